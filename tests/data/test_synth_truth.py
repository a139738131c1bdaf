"""The generator's ground truth: scenes and identities kept apart, existing data unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reidcore.data.synth import SynthParams, write_dataset
from reidcore.data.synth_truth import SyntheticTruth
from reidcore.errors import ReidError

from .test_data_commands import tree_digest

# digests of every file of these data sets, taken before the renderer was split into scene
# and painting (issue 21): the split must not change a byte of existing data
PINNED = {
    "synthetic": "29d4127d66d7be41a532a0abd8391dc201c7e35572909d1cecc19becfaec08f1",
    "real": "da6a4ca9a2a981a84c96aebc3b2df42106e6f442e1b6fb510ff1c8654282fadb",
}


def small(style: str) -> SynthParams:
    return SynthParams(ids=4, test_ids=3, distractors=2, cameras=3, images_per_camera=3,
                       style=style, height=64, width=32, seed=5)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("truth")
    return {style: write_dataset(small(style), root / style) for style in PINNED}


@pytest.mark.parametrize("style", sorted(PINNED))
def test_existing_datasets_are_byte_identical(datasets, style):
    assert tree_digest(datasets[style]) == PINNED[style]


def on_disk(folder: Path, truth: SyntheticTruth, name: str) -> np.ndarray:
    return np.asarray(Image.open(folder / truth.job(name).split / name).convert("RGB"))


def test_an_image_rendered_again_equals_its_file(datasets):
    truth = SyntheticTruth.from_dataset(datasets["real"])
    for name in sorted(truth.jobs)[::7]:
        rendered = truth.render(name)
        assert np.array_equal(rendered.image, on_disk(datasets["real"], truth, name))
        assert rendered.mask.shape == (64, 32) and 0.05 < rendered.mask.mean() < 0.8


def test_swap_keeps_the_scene_and_takes_the_identity(datasets):
    truth = SyntheticTruth.from_dataset(datasets["synthetic"])
    names = sorted(truth.jobs)
    s = names[-1]
    same = next(n for n in names if truth.identity_of(n) == truth.identity_of(s) and n != s)
    other = next(n for n in names if truth.identity_of(n) != truth.identity_of(s))
    own = on_disk(datasets["synthetic"], truth, s)
    # the identity of another image of s's own person: exactly s
    assert np.array_equal(truth.swap(same, s).image, own)
    swapped = truth.swap(other, s)
    assert not np.array_equal(swapped.image, own)
    # the background (outside both people) is s's: the scene did not move
    outside = ~(swapped.mask | truth.render(s).mask)
    difference = np.abs(swapped.image.astype(int) - own.astype(int)).mean(axis=2)
    assert difference[outside].mean() < 8 < difference[swapped.mask].mean()


def test_translation_keeps_scene_and_person_and_changes_the_camera(datasets):
    truth = SyntheticTruth.from_dataset(datasets["synthetic"])
    name = sorted(truth.jobs)[3]
    own, real = truth.render(name), truth.translate(name, "real")
    assert np.array_equal(truth.translate(name, "synthetic").image, own.image)
    assert np.array_equal(real.mask, own.mask)  # the same person in the same place
    assert np.abs(real.image.astype(int) - own.image.astype(int)).mean() > 10


def test_any_camera_of_the_other_style_can_be_asked_for(datasets):
    truth = SyntheticTruth.from_dataset(datasets["synthetic"])
    name = sorted(truth.jobs)[3]
    index = truth.job(name).camera
    assert list(truth.cameras) == [1, 2, 3]
    own = truth.translate(name, "real")
    assert np.array_equal(truth.translate(name, "real", camera_index=index).image, own.image)
    other = truth.translate(name, "real", camera_index=index % 3 + 1)
    assert np.array_equal(other.mask, own.mask)  # the same scene and person ...
    assert np.abs(other.image.astype(int) - own.image.astype(int)).mean() > 5  # ... camera not
    for wrong in (0, 4):
        with pytest.raises(ReidError, match=f"camera {wrong} does not exist .* 1 to 3"):
            truth.render(name, camera_index=wrong)


def test_textures_and_errors(datasets):
    truth = SyntheticTruth.from_dataset(datasets["synthetic"])
    texture = np.asarray(Image.open(datasets["synthetic"] / "textures" / "0002.png"))
    assert np.array_equal(truth.texture(2), texture)
    mean = truth.mean_texture([1, 2])
    assert np.allclose(mean, (truth.texture(1).astype(np.float32) + texture) / 2)
    with pytest.raises(ReidError, match="not an image of the synthetic data set"):
        truth.job("9999_c1s1_000001_01.jpg")
    with pytest.raises(ReidError, match="unknown synthetic style"):
        truth.translate(sorted(truth.jobs)[0], "cartoon")
    with pytest.raises(ReidError, match="not the manifest of a synthetic data set"):
        SyntheticTruth.from_dataset(datasets["synthetic"] / "textures")

"""The synthetic pedestrian generator and the ``synthetic`` dataset component."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reidcore.data.datasets.base import split_stats
from reidcore.data.datasets.market1501 import Market1501, Market1501Config
from reidcore.data.datasets.synthetic import SyntheticConfig, SyntheticDataset
from reidcore.data.synth import (
    REGIONS,
    TEXTURE_SIZE,
    SynthParams,
    make_texture,
    parse_size,
    plan,
    write_dataset,
)
from reidcore.errors import ReidError

from .conftest import TINY


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_parameters_give_byte_identical_files_whatever_the_workers(tiny_params, tiny_synth,
                                                                        tmp_path):
    again = write_dataset(tiny_params, tmp_path / "again", workers=2)
    assert digest(again) == digest(tiny_synth)


def test_another_seed_gives_other_images(tiny_synth, tmp_path):
    other = write_dataset(SynthParams(**{**TINY, "ids": 1, "test_ids": 1, "distractors": 0,
                                         "seed": 4}), tmp_path / "other")
    assert (other / "textures" / "0001.png").read_bytes() != (
        tiny_synth / "textures" / "0001.png").read_bytes()
    first = {p.name: p.read_bytes() for p in (tiny_synth / "bounding_box_train").iterdir()}
    second = {p.name: p.read_bytes() for p in (other / "bounding_box_train").iterdir()}
    assert not set(first.values()) & set(second.values())


def test_layout_counts_and_naming_follow_market1501(tiny_params, tiny_synth):
    jobs = plan(tiny_params)
    manifest = json.loads((tiny_synth / "manifest.json").read_text())
    assert manifest["version"] and manifest["parameters"]["seed"] == 3
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        files = sorted(p.name for p in (tiny_synth / split).iterdir())
        assert files == sorted(j.filename for j in jobs if j.split == split)
        assert manifest["images"][split] == len(files)
    names = [p.name for p in (tiny_synth / "bounding_box_train").iterdir()]
    assert all(len(n.split("_")) == 4 and n.endswith("_01.jpg") for n in names)
    with Image.open(tiny_synth / "query" / files_of(tiny_synth, "query")[0]) as image:
        assert image.size == (32, 64) and image.mode == "RGB"


def files_of(folder: Path, split: str) -> list[str]:
    return sorted(p.name for p in (folder / split).iterdir())


def test_query_is_one_image_per_identity_and_camera_and_ids_are_disjoint(tiny_synth):
    splits = Market1501(Market1501Config(root=str(tiny_synth))).load()
    per_pid_cam = Counter((r.pid, r.camid) for r in splits.query)
    assert set(per_pid_cam.values()) == {1}
    train_ids = {r.pid for r in splits.train}
    test_ids = {r.pid for r in splits.query}
    assert train_ids == set(range(1, 7)) and test_ids == set(range(7, 12))
    gallery_ids = {r.pid for r in splits.gallery}
    assert gallery_ids == test_ids | {0}  # distractors are pid 0, gallery only
    # every query has a match in the gallery from another camera
    gallery = Counter((r.pid, r.camid) for r in splits.gallery)
    for pid, cam in per_pid_cam:
        assert any(p == pid and c != cam for p, c in gallery)
    assert all(len({c for p, c in per_pid_cam if p == pid}) >= 2 for pid in test_ids)


def test_textures_are_written_per_identity_with_the_documented_layout(tiny_params, tiny_synth):
    textures = sorted(p.name for p in (tiny_synth / "textures").iterdir())
    assert textures == [f"{i:04d}.png" for i in range(1, 12)]
    with Image.open(tiny_synth / "textures" / "0001.png") as image:
        assert image.size == (TEXTURE_SIZE, TEXTURE_SIZE)
        stored = np.asarray(image)
    assert np.array_equal(stored, make_texture(tiny_params, 1))
    # regions tile the map without overlap
    covered = np.zeros((TEXTURE_SIZE, TEXTURE_SIZE), dtype=int)
    for x0, y0, x1, y1 in REGIONS.values():
        covered[y0:y1, x0:x1] += 1
    assert covered.max() == 1
    # different identities look different
    assert not np.array_equal(make_texture(tiny_params, 1), make_texture(tiny_params, 2))


def test_cameras_differ_in_colour_statistics(tiny_synth):
    means: dict[str, list] = {}
    for path in (tiny_synth / "bounding_box_train").iterdir():
        cam = path.name.split("_")[1][:2]
        with Image.open(path) as image:
            means.setdefault(cam, []).append(np.asarray(image, dtype=float).mean(axis=(0, 1)))
    per_cam = np.array([np.mean(v, axis=0) for v in means.values()])
    assert len(per_cam) == 3
    assert np.abs(per_cam[:, None] - per_cam[None]).max() > 5.0


def _statistics(folder: Path) -> tuple[float, float]:
    """Mean high-frequency energy and mean per-image colour spread of the train images."""
    energy, spread = [], []
    for path in sorted((folder / "bounding_box_train").iterdir()):
        with Image.open(path) as image:
            a = np.asarray(image, dtype=float)
        energy.append(np.abs(np.diff(a, axis=1)).mean())
        spread.append(a.reshape(-1, 3).mean(axis=0).std())
    return float(np.mean(energy)), float(np.mean(spread))


def test_styles_form_a_domain_gap_with_disjoint_identities(tiny_params, tiny_synth, tiny_real):
    synthetic = make_texture(tiny_params, 1)
    real = make_texture(SynthParams(**{**TINY, "style": "real"}), 1)
    assert not np.array_equal(synthetic, real)  # identity 1 of each style is another person
    assert json.loads((tiny_real / "manifest.json").read_text())["parameters"]["style"] == "real"
    synthetic_energy, _ = _statistics(tiny_synth)
    real_energy, _ = _statistics(tiny_real)
    assert real_energy > 1.2 * synthetic_energy  # clutter and sensor noise


def test_synthetic_component_generates_once_into_the_cache(reid_cache):
    config = SyntheticConfig(ids=4, test_ids=3, distractors=1, cameras=2, images_per_camera=2,
                             size="64x32", seed=1)
    dataset = SyntheticDataset(config)
    splits = dataset.load()
    assert split_stats(splits) == dataset.expected
    folder = next((reid_cache / "synthetic").iterdir())
    assert folder.name == dataset.params.key()
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    assert SyntheticDataset(config).load() == splits  # cached: not generated again
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp
    record = splits.train[0]
    assert record.domain == "synthetic-synthetic" and record.camid in (0, 1)
    assert Path(record.extras["texture"]).is_file()
    assert all("texture" not in r.extras for r in splits.gallery if r.pid == 0)


def test_synthetic_root_option_and_market1501_read_the_same_data(tmp_path):
    config = SyntheticConfig(ids=3, test_ids=2, distractors=1, cameras=2, images_per_camera=2,
                             size="64x32", root=str(tmp_path))
    splits = SyntheticDataset(config).load()
    folder = next(tmp_path.iterdir())
    market = Market1501(Market1501Config(root=str(folder))).load()
    assert [r.path for r in market.train] == [r.path for r in splits.train]
    assert split_stats(market) == split_stats(splits)


def test_default_synthetic_config_is_small_and_valid():
    config = SyntheticConfig()
    dataset = SyntheticDataset(config)
    expected = dataset.expected
    assert 30 <= expected.train_ids <= 50
    assert expected.train_images + expected.query_images + expected.gallery_images < 2000
    assert parse_size(config.size) == (128, 64)


@pytest.mark.parametrize("bad", ["128", "x64", "8x4", "abc"])
def test_bad_sizes_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


def test_bad_parameters_are_user_errors():
    with pytest.raises(ReidError, match="images_per_camera"):
        SynthParams(images_per_camera=1)
    with pytest.raises(ReidError, match="style"):
        SynthParams(style="cartoon")


def test_refuses_to_overwrite_a_foreign_folder(tiny_params, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ReidError, match="not empty"):
        write_dataset(tiny_params, tmp_path)
    assert (tmp_path / "mine.txt").exists()

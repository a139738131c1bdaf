"""The synthetic data set's plan: its parameters, its Market-1501 layout and file names,
and the random streams every identity and image draws from (cheap: no rendering).

Deterministic by construction: each thing drawn (an identity's cameras, its appearance, a
camera, one image) has its own stream keyed by (seed, style, kind, ...), so nothing depends
on the order of rendering or the number of worker processes.
"""

from __future__ import annotations

import re
from typing import Literal

import attrs
import numpy as np

from reidcore.errors import ReidError

GENERATOR_VERSION = "1.1"
STYLES = ("synthetic", "real")
Style = Literal["synthetic", "real"]

_SIZE_RE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


def parse_size(size: str) -> tuple[int, int]:
    """``"128x64"`` -> ``(128, 64)`` (height, width)."""
    match = _SIZE_RE.match(size)
    if not match:
        raise ValueError(f"expected a size like '128x64' (height x width), got {size!r}")
    height, width = int(match.group(1)), int(match.group(2))
    if height < 16 or width < 8:
        raise ValueError(f"size {size!r} is too small (at least 16x8)")
    return height, width


@attrs.frozen
class SynthParams:
    """What a synthetic data set is generated from (the cache key and the manifest)."""

    ids: int = 40
    """Training identities."""
    test_ids: int = 40
    """Test identities (disjoint from the training ones)."""
    distractors: int = 10
    """Extra identities in the gallery only, written with pid 0 (as in Market-1501)."""
    cameras: int = 4
    images_per_camera: int = 4
    style: str = "synthetic"
    height: int = 128
    width: int = 64
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        if self.style not in STYLES:
            raise ReidError(f"unknown synthetic style {self.style!r}; expected one of {STYLES}")
        if self.cameras < 2 or self.cameras > 99:
            raise ReidError(f"synthetic data needs 2 to 99 cameras, got {self.cameras}")
        if self.images_per_camera < 2:
            raise ReidError("synthetic data needs images_per_camera >= 2 (one goes to the "
                            f"query, the rest to the gallery), got {self.images_per_camera}")
        if self.ids < 1 or self.test_ids < 1 or self.distractors < 0:
            raise ReidError("synthetic data needs ids >= 1, test_ids >= 1 and distractors >= 0")

    def key(self) -> str:
        """A readable cache-directory name unique to these parameters and the version."""
        return (f"{self.style}-{self.height}x{self.width}-i{self.ids}-t{self.test_ids}"
                f"-d{self.distractors}-c{self.cameras}-n{self.images_per_camera}"
                f"-s{self.seed}-v{GENERATOR_VERSION}")

    def to_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.frozen
class ImageJob:
    """One image to render: where it goes and what it shows."""

    split: str  # bounding_box_train | query | bounding_box_test
    filename: str
    identity: int  # appearance key (file pid, or a distractor number above the pids)
    pid: int  # pid written in the file name (0 for distractors)
    camera: int  # 1-based
    index: int  # index of this image among the identity's images in this camera


SPLIT_DIRS = ("bounding_box_train", "query", "bounding_box_test")
_STYLE_CODE = {"synthetic": 1, "real": 2}


def random_stream(params: SynthParams, *key: int) -> np.random.Generator:
    """The stream keyed by ``key`` (kinds: 1 an identity's cameras, 2 its appearance,
    3 a camera, 4 an image), so every draw is independent of the order of rendering."""
    return np.random.default_rng([params.seed, _STYLE_CODE[params.style], *key])


def visible_cameras(params: SynthParams, identity: int) -> list[int]:
    """The (1-based, sorted) cameras that see ``identity``: at least two."""
    rng = random_stream(params, 1, identity)
    count = int(rng.integers(2, params.cameras + 1))
    return sorted(int(c) + 1 for c in rng.choice(params.cameras, size=count, replace=False))


def plan(params: SynthParams) -> list[ImageJob]:
    """Every image of the data set, in a fixed order (cheap: no rendering)."""
    jobs: list[ImageJob] = []
    frames: dict[int, int] = {}

    def name(pid: int, camera: int) -> str:
        frames[camera] = frames.get(camera, 0) + 1
        return f"{pid:04d}_c{camera}s1_{frames[camera]:06d}_01.jpg"

    for identity in range(1, params.ids + 1):
        for camera in visible_cameras(params, identity):
            for index in range(params.images_per_camera):
                jobs.append(ImageJob("bounding_box_train", name(identity, camera), identity,
                                     identity, camera, index))
    first_test = params.ids + 1
    for identity in range(first_test, first_test + params.test_ids):
        for camera in visible_cameras(params, identity):
            for index in range(params.images_per_camera):
                split = "query" if index == 0 else "bounding_box_test"
                jobs.append(ImageJob(split, name(identity, camera), identity, identity, camera,
                                     index))
    first_distractor = first_test + params.test_ids
    for identity in range(first_distractor, first_distractor + params.distractors):
        for camera in visible_cameras(params, identity):
            for index in range(max(1, params.images_per_camera // 2)):
                jobs.append(ImageJob("bounding_box_test", name(0, camera), identity, 0, camera,
                                     index))
    return jobs

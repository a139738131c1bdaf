"""Shared fixtures of the data-layer tests: tiny synthetic data generated once per session
into a temporary cache (``REID_CACHE`` points there for every test of this folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reidcore.data.synth import SynthParams

TINY = dict(ids=6, test_ids=5, distractors=2, cameras=3, images_per_camera=3, height=64,
            width=32, seed=3)


@pytest.fixture(scope="session")
def reid_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reid-cache")


@pytest.fixture(autouse=True)
def _cache_env(reid_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REID_CACHE", str(reid_cache))


@pytest.fixture(scope="session")
def tiny_params() -> SynthParams:
    return SynthParams(**TINY)


@pytest.fixture(scope="session")
def tiny_synth(tiny_params: SynthParams, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic data set in the Market-1501 layout (generated once)."""
    from reidcore.data.synth import write_dataset

    return write_dataset(tiny_params, tmp_path_factory.mktemp("synth") / "tiny")


@pytest.fixture(scope="session")
def tiny_real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reidcore.data.synth import write_dataset

    params = SynthParams(**{**TINY, "style": "real"})
    return write_dataset(params, tmp_path_factory.mktemp("synth") / "tiny-real")


def touch_all(paths) -> None:
    """Create empty files (index-only tests never decode them)."""
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb"):
            pass

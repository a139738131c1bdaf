"""Fixtures of the engine tests: tiny synthetic data in a per-session cache, tiny recipes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engine-cache")


def tiny_recipe_dict(root: Path, epochs: int = 3, **train: Any) -> dict[str, Any]:
    """A recipe that trains a ResNet-10-T baseline for a few seconds per epoch."""
    data = {"name": "synthetic", "ids": 8, "test_ids": 6, "distractors": 2, "cameras": 2,
            "images_per_camera": 3, "size": "64x32", "root": str(root)}
    return {
        "name": "tiny", "seed": 3,
        "method": {"name": "baseline"},
        "backbone": {"name": "timm", "model": "resnet10t", "last_stride": 1},
        "losses": [{"name": "cross_entropy", "label_smoothing": 0.1},
                   {"name": "triplet", "margin": 0.3}],
        "data": {"source": [dict(data)], "test": [dict(data)]},
        "loader": {"height": 64, "width": 32, "identities": 4, "instances": 2,
                   "test_batch_size": 64, "workers": 0},
        "train": {"device": "cpu", "epochs": epochs, "eval_every": epochs, "lr": 1e-3,
                  "warmup_epochs": 1.0, "schedule": "cosine", "log_every": 2,
                  "ranked_pictures": 4, **train},
        "evaluate": {"name": "ranking", "flip": True},
    }


def resolve_dict(raw: dict[str, Any]) -> Any:
    from reidcore.plugins import get_plugins
    from reidcore.recipe import resolve

    plugins = get_plugins()
    return resolve(raw, "<test recipe>", plugins.registry, plugins.hook)


def fast_recipe_dict(root: Path, epochs: int = 2, steps: int = 1, **train: Any) -> dict[str, Any]:
    """A recipe whose whole run takes about a second on a quiet core: timm's
    ``test_resnet`` on 32 x 16 images, ``steps`` steps per epoch, evaluation without flip
    and no pictures. For tests of the engine's bookkeeping, not of learning."""
    raw = tiny_recipe_dict(root, epochs=epochs, **{"steps_per_epoch": steps, "eval_every": 1,
                                                    "ranked_pictures": 0, **train})
    raw["backbone"] = {"name": "timm", "model": "test_resnet", "last_stride": 1}
    for role in ("source", "test"):
        raw["data"][role][0]["size"] = "32x16"
    raw["loader"].update(height=32, width=16)
    raw["evaluate"]["flip"] = False
    return raw

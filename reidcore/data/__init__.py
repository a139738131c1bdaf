"""The data layer: datasets, the synthetic generator, transforms, samplers and loaders.

The engine calls :func:`build_train_loader` and :func:`build_test_loaders`
(:mod:`reidcore.data.loaders` documents the batch keys). Importing this package imports
no torch: the names below are loaded on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "build_train_loader": "reidcore.data.loaders",
    "build_test_loaders": "reidcore.data.loaders",
    "build_eval_loader": "reidcore.data.loaders",
    "TrainLoader": "reidcore.data.loaders",
    "TestSet": "reidcore.data.loaders",
    "open_image": "reidcore.data.loaders",
    "LoaderConfig": "reidcore.data.config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reidcore.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

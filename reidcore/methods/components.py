"""The core's method components (registered by ``reidcore.builtin``)."""

from __future__ import annotations

from reidcore.methods.config import BaselineConfig
from reidcore.registry import ComponentSpec


def method_specs() -> list[ComponentSpec]:
    return [
        ComponentSpec(name="baseline", kind="method", config=BaselineConfig,
                      build="reidcore.methods.baseline:build",
                      summary="strong baseline: backbone + BNNeck + CE (label smoothing) + "
                              "batch-hard triplet",
                      example="reidcore.engine.build:example_recipe"),
    ]

"""The run's inference embedding as one ``nn.Module``: what ONNX export traces.

A method's ``embed`` is what evaluation calls; evaluation then averages it with the
mirrored image's when the recipe says ``[evaluate] flip`` and the ranking evaluator
l2-normalises when ``[evaluate] normalisation = "l2"``. Baking both into the exported graph
gives a deployed model the embedding the run was scored with (either can be left out)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


def evaluation_options(recipe: Any) -> tuple[bool, bool]:
    """``(flip, normalise)`` as the recipe's evaluation applies them."""
    config = recipe.evaluate.config
    return (bool(getattr(config, "flip", False)),
            getattr(config, "normalisation", "none") == "l2")


class InferenceEmbedding(nn.Module):
    """``images (B x 3 x H x W, normalised) -> embeddings (B x D)`` through ``method.embed``.

    The method's networks are registered as children, so tracing sees their weights as
    parameters (exported as initializers) rather than as loose constants."""

    def __init__(self, method: Any, flip: bool, normalise: bool):
        super().__init__()
        self.method = method
        modules: Mapping[str, nn.Module] = method.modules()
        self.networks = nn.ModuleDict(dict(modules))
        self.flip = flip
        self.normalise = normalise

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.method.embed(images).float()
        if self.flip:
            features = (features + self.method.embed(images.flip(3)).float()) / 2
        if self.normalise:
            features = nn.functional.normalize(features, dim=1)
        return features

"""The flipping loss (a Loss component any method can use) and the soft-margin batch-hard
triplet loss FlipReID uses, taken from the core's ``triplet`` component."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from reidcore.api import Registry
from torch import nn

from reid_plugin_flipreid.config import FlippingLossConfig


def _as_list(value: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [value] if isinstance(value, torch.Tensor) else list(value)


def flipping_loss(original: torch.Tensor | Sequence[torch.Tensor],
                  flipped: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_e mean_batch(mean_dims((original_e - flipped_e)^2))`` over one embedding
    (a tensor) or several (sequences of the same length, paired in order)."""
    originals, flips = _as_list(original), _as_list(flipped)
    if len(originals) != len(flips) or not originals:
        raise ValueError(f"flipping loss needs as many flipped embeddings as original ones, "
                         f"got {len(originals)} and {len(flips)}")
    total = None
    for a, b in zip(originals, flips, strict=True):
        if a.shape != b.shape:
            raise ValueError(f"flipping loss: shapes differ, {tuple(a.shape)} vs "
                             f"{tuple(b.shape)}")
        term = (a.float() - b.float()).pow(2).flatten(1).mean(1).mean()
        total = term if total is None else total + term
    return total


class FlippingLoss(nn.Module):
    """MSE between the embeddings of images and of their horizontal flips, summed over the
    embeddings. Reads ``outputs[config.original]`` and ``outputs[config.flipped]``."""

    def __init__(self, original: str = "features_original", flipped: str = "features_flipped"):
        super().__init__()
        self.original, self.flipped = original, flipped

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        missing = [key for key in (self.original, self.flipped) if key not in outputs]
        if missing:
            raise KeyError(f"flipping loss reads outputs[{missing[0]!r}] but the method gave only "
                           f"{sorted(outputs)}; it needs a method that embeds the flipped images "
                           f"too (e.g. flipreid with variant = 'flipreid'), or set the loss's "
                           f"'original'/'flipped' options")
        return flipping_loss(outputs[self.original], outputs[self.flipped])


def build_flipping(config: FlippingLossConfig, **_context: Any) -> FlippingLoss:
    return FlippingLoss(config.original, config.flipped)


def flipping_example() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Tiny inputs for the contract checks: two embeddings of four images, both views."""
    generator = torch.Generator().manual_seed(0)
    original = [torch.rand(4, 8, generator=generator, requires_grad=True),
                torch.rand(4, 4, generator=generator, requires_grad=True)]
    flipped = [torch.rand(4, 8, generator=generator), torch.rand(4, 4, generator=generator)]
    return ({"features_original": original, "features_flipped": flipped},
            {"pids": torch.tensor([0, 0, 1, 1])})


def soft_margin_triplet(registry: Registry, input: str = "features") -> nn.Module:
    """The core's batch-hard ``triplet`` loss with the soft margin (softplus(d_ap - d_an)),
    Euclidean distances, no normalisation: FlipReID's triplet loss. ``registry`` is the
    run's (``context.registry``)."""
    spec = registry.get("loss", "triplet")
    return spec.create(spec.config(soft_margin=True, normalize=False, input=input))


def cross_entropy(registry: Registry, input: str = "logits") -> nn.Module:
    """The core's ``cross_entropy`` loss without label smoothing (as the official code);
    ``registry`` is the run's (``context.registry``)."""
    spec = registry.get("loss", "cross_entropy")
    return spec.create(spec.config(label_smoothing=0.0, input=input))

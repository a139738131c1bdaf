"""Pooling of B x C x H x W feature maps into B x C vectors: average, max and GeM."""

from __future__ import annotations

import torch
from torch import nn


class GeneralizedMeanPooling(nn.Module):
    """GeM pooling (Radenovic et al.): ``(mean(clamp(x, eps) ** p)) ** (1 / p)`` per channel.

    ``p = 1`` is average pooling and ``p -> inf`` tends to max pooling; ``p`` is a
    trainable scalar unless ``trainable=False``.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, trainable: bool = True):
        super().__init__()
        if p <= 0:
            raise ValueError(f"GeM p must be > 0, got {p}")
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=trainable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.to(x.dtype)
        return x.clamp(min=self.eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)

    def extra_repr(self) -> str:
        p = float(self.p.detach().cpu()) if self.p.device.type != "meta" else "?"
        return f"p={p}, eps={self.eps}"


class AveragePooling(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


class MaxPooling(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(-2, -1))


def build_pooling(kind: str, gem_p: float = 3.0, gem_trainable: bool = True) -> nn.Module:
    """``"avg"``, ``"max"`` or ``"gem"`` as a module mapping B x C x H x W to B x C."""
    if kind == "avg":
        return AveragePooling()
    if kind == "max":
        return MaxPooling()
    if kind == "gem":
        return GeneralizedMeanPooling(gem_p, trainable=gem_trainable)
    raise ValueError(f"unknown pooling {kind!r}; expected 'avg', 'max' or 'gem'")

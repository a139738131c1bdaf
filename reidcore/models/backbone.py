"""A backbone = a trunk producing feature maps + a pooling layer (the Backbone contract)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reidcore.models.pooling import build_pooling


class PooledBackbone(nn.Module):
    """``forward_features(x) -> B x C x H x W`` from ``trunk``; ``forward(x) -> B x C`` pooled.

    ``trunk`` must have ``forward_features`` (timm models do) and ``num_features``.
    """

    def __init__(self, trunk: Any, feature_dim: int, pooling: str = "avg",
                 gem_p: float = 3.0, gem_trainable: bool = True):
        super().__init__()
        self.trunk = trunk
        self.pool = build_pooling(pooling, gem_p, gem_trainable)
        self.feature_dim = feature_dim

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk.forward_features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_features(images)).flatten(1)

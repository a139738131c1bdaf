"""The plugin's torch code, imported only when a component is built."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from reid_plugin_example.plugin import EmbeddingNormConfig, TinyCNNConfig


class TinyCNN(nn.Module):
    """Three stride-2 conv blocks; ``forward`` pools the last map to a vector."""

    def __init__(self, config: TinyCNNConfig):
        super().__init__()
        w = config.width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, 2, 1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 3, 2, 1), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, config.feature_dim, 3, 2, 1), nn.BatchNorm2d(config.feature_dim),
            nn.ReLU(inplace=True))
        self.feature_dim = config.feature_dim

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(images).mean(dim=(2, 3))


class EmbeddingNorm(nn.Module):
    """mean((||f|| - target)^2) over the batch's embeddings ``outputs["embeddings"]``."""

    def __init__(self, config: EmbeddingNormConfig):
        super().__init__()
        self.target = config.target

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        norms = outputs["embeddings"].norm(dim=1)
        return ((norms - self.target) ** 2).mean()


def build_tiny_cnn(config: TinyCNNConfig) -> TinyCNN:
    return TinyCNN(config)


def build_embedding_norm(config: EmbeddingNormConfig) -> EmbeddingNorm:
    return EmbeddingNorm(config)


def embedding_norm_example() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    embeddings = torch.randn(4, 8, requires_grad=True)
    return {"embeddings": embeddings}, {"pids": torch.tensor([0, 0, 1, 1])}

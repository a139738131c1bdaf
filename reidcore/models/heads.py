"""Heads on top of a backbone's pooled vector: BNNeck, an embedding layer, a classifier.

BNNeck (Luo et al., "Bag of Tricks and a Strong Baseline", 2019): the triplet loss sees
the feature *before* a BatchNorm1d whose bias is frozen at zero, the identity classifier
(a bias-free linear layer) sees the feature *after* it, and retrieval uses the feature
after it.
"""

from __future__ import annotations

import torch
from torch import nn


class BNNeck(nn.Module):
    """BatchNorm1d with a frozen zero bias (``weight`` 1, ``bias`` 0 at init)."""

    def __init__(self, dim: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        self.bn.bias.requires_grad_(False)
        if self.bn.weight.device.type != "meta":
            nn.init.ones_(self.bn.weight)
            nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x)


class Embedding(nn.Module):
    """A linear projection to ``out_dim`` (Kaiming init), optionally followed by BN and a
    ReLU (``relu``: torchreid's ``fc`` of OSNet and resnet50_fc512 is Linear with bias + BN
    + ReLU; ``bias`` defaults to "no BN after it")."""

    def __init__(self, in_dim: int, out_dim: int, batch_norm: bool = False,
                 relu: bool = False, bias: bool | None = None):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim, bias=not batch_norm if bias is None else bias)
        self.bn = nn.BatchNorm1d(out_dim) if batch_norm else nn.Identity()
        self.relu = nn.ReLU() if relu else nn.Identity()
        if self.linear.weight.device.type != "meta":
            nn.init.kaiming_normal_(self.linear.weight, mode="fan_out")
            if self.linear.bias is not None:
                nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.linear(x)))


class Classifier(nn.Module):
    """A bias-free linear identity classifier, weights ~ N(0, 0.001) as in the strong baseline."""

    def __init__(self, in_dim: int, num_classes: int, bias: bool = False):
        super().__init__()
        self.fc = nn.Linear(in_dim, num_classes, bias=bias)
        if self.fc.weight.device.type != "meta":
            nn.init.normal_(self.fc.weight, std=0.001)
            if self.fc.bias is not None:
                nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

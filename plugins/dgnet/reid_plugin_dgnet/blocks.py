"""Layers the generator side is built from: conv blocks, LayerNorm, AdaIN, residual blocks,
ASPP and the code-to-AdaIN MLP.

Every conv block is reflection padding -> conv (with bias) -> optional norm -> optional
LeakyReLU(0.2), the layout of the official generator and discriminator.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

NEG_SLOPE = 0.2


class LayerNorm(nn.Module):
    """Per-sample normalisation over (C, H, W) with a per-channel affine.

    Differs from ``nn.LayerNorm`` as the official decoder does: the unbiased standard
    deviation, ``eps`` added to the std (not the variance), gamma drawn from U(0, 1)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.rand(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        mean = flat.mean(1).view(-1, 1, 1, 1)
        std = flat.std(1).view(-1, 1, 1, 1)
        x = (x - mean) / (std + self.eps)
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


class AdaIN(nn.Module):
    """Instance normalisation whose scale and bias come from outside, per sample and channel
    (``weight`` / ``bias``: B x C, set by the decoder before each forward). No "+1" on the
    scale: the MLPs predict it directly."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is None or self.bias is None:
            raise RuntimeError("AdaIN used before the decoder assigned its scales and biases")
        x = F.instance_norm(x, eps=self.eps)
        return x * self.weight[:, :, None, None] + self.bias[:, :, None, None]


def conv_block(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
               norm: str = "none", act: bool = True, dilation: int = 1) -> nn.Sequential:
    """Reflection pad -> conv -> norm (``in`` | ``ln`` | ``adain`` | ``none``) -> LeakyReLU."""
    layers: list[nn.Module] = []
    if padding:
        layers.append(nn.ReflectionPad2d(padding))
    layers.append(nn.Conv2d(cin, cout, kernel, stride, dilation=dilation, bias=True))
    if norm == "in":
        layers.append(nn.InstanceNorm2d(cout, affine=False))
    elif norm == "ln":
        layers.append(LayerNorm(cout))
    elif norm == "adain":
        layers.append(AdaIN(cout))
    elif norm != "none":
        raise ValueError(f"unknown norm {norm!r}")
    if act:
        layers.append(nn.LeakyReLU(NEG_SLOPE, inplace=True))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """[conv3x3 + norm + LReLU, conv3x3 + norm] + identity; nothing after the sum."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(conv_block(channels, channels, 3, 1, 1, norm, act=True),
                                  conv_block(channels, channels, 3, 1, 1, norm, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling at the end of Es (official code; not in the paper):
    ``dim/2``-channel branches (1x1; 1x1 then 3x3 dilated 3, 6, 9), fused by a 1x1
    conv to ``2 dim`` channels with instance norm and no activation."""

    def __init__(self, dim: int, dilations: tuple[int, ...] = (3, 6, 9)):
        super().__init__()
        half = dim // 2
        self.dilations = tuple(dilations)
        self.point = conv_block(dim, half, 1, norm="in", act=False)
        self.dilated = nn.ModuleList(
            nn.Sequential(conv_block(dim, half, 1, norm="in", act=True),
                          conv_block(half, half, 3, 1, rate, "in", act=False, dilation=rate))
            for rate in self.dilations)
        self.fuse = conv_block((1 + len(self.dilations)) * half, 2 * dim, 1, norm="in",
                               act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.point(x), *(branch(x) for branch in self.dilated)], 1))


class MLP(nn.Module):
    """Linear -> LReLU -> Linear -> LReLU -> Linear: one code chunk to AdaIN parameters."""

    def __init__(self, cin: int, hidden: int, cout: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cin, hidden), nn.LeakyReLU(NEG_SLOPE, inplace=True),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(NEG_SLOPE, inplace=True),
                                 nn.Linear(hidden, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def kaiming_init(module: nn.Module) -> None:
    """Kaiming-normal (fan_in) conv and linear weights, zero biases (Es, G)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def gaussian_init(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) conv weights, zero biases (D)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

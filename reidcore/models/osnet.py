"""OSNet (Zhou, Yang, Cavallaro, Xiang: "Omni-Scale Feature Learning for Person
Re-Identification", ICCV 2019), the trunk torchreid's ``osnet_x1_0`` builds.

timm has no OSNet, so the core carries it. Module names follow torchreid's ``osnet.py`` so
that its checkpoints map key for key (``conv1.conv.weight``, ``conv2.0.conv2b.1.bn.*``,
...). The trunk ends at ``conv5`` (a 1x1 conv + BN + ReLU); torchreid's global average
pooling is the backbone's pooling and its ``fc`` (Linear + BN + ReLU to 512) is the
baseline's ``embedding_head = "linear_bn_relu"``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reidcore.models.backbone import PooledBackbone
from reidcore.models.config import OSNetConfig

WIDTHS = {"x1_0": (64, 256, 384, 512), "x0_75": (48, 192, 288, 384),
          "x0_5": (32, 128, 192, 256), "x0_25": (16, 64, 96, 128)}
"""Channels of conv1 and of the three OS stages for each width multiplier."""


class ConvLayer(nn.Module):
    """conv (no bias) + BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, bias=False, groups=groups)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Conv1x1(ConvLayer):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 1)


class Conv1x1Linear(nn.Module):
    """1x1 conv + BN, no non-linearity."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class LightConv3x3(nn.Module):
    """1x1 linear conv, depth-wise 3x3, BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False,
                               groups=out_channels)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv2(self.conv1(x))))


class ChannelGate(nn.Module):
    """The unified aggregation gate: channel weights from a two-layer MLP on the pooled
    map (reduction 16, sigmoid); one gate is shared by the four streams of a block."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(self.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        return x * torch.sigmoid(gate)


class OSBlock(nn.Module):
    """Omni-scale residual block: streams of 1-4 light 3x3 convs, gated and summed."""

    def __init__(self, in_channels: int, out_channels: int, bottleneck_reduction: int = 4):
        super().__init__()
        mid = out_channels // bottleneck_reduction
        self.conv1 = Conv1x1(in_channels, mid)
        self.conv2a = LightConv3x3(mid, mid)
        self.conv2b = nn.Sequential(*(LightConv3x3(mid, mid) for _ in range(2)))
        self.conv2c = nn.Sequential(*(LightConv3x3(mid, mid) for _ in range(3)))
        self.conv2d = nn.Sequential(*(LightConv3x3(mid, mid) for _ in range(4)))
        self.gate = ChannelGate(mid)
        self.conv3 = Conv1x1Linear(mid, out_channels)
        self.downsample = (Conv1x1Linear(in_channels, out_channels)
                           if in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = (self.gate(self.conv2a(x1)) + self.gate(self.conv2b(x1))
              + self.gate(self.conv2c(x1)) + self.gate(self.conv2d(x1)))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv3(x2) + identity)


class OSNet(nn.Module):
    """The trunk: ``forward_features`` gives conv5's map (``num_features`` channels)."""

    def __init__(self, channels: tuple[int, int, int, int],
                 layers: tuple[int, int, int] = (2, 2, 2)):
        super().__init__()
        self.conv1 = ConvLayer(3, channels[0], 7, stride=2, padding=3)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = self._make_stage(layers[0], channels[0], channels[1], reduce=True)
        self.conv3 = self._make_stage(layers[1], channels[1], channels[2], reduce=True)
        self.conv4 = self._make_stage(layers[2], channels[2], channels[3], reduce=False)
        self.conv5 = Conv1x1(channels[3], channels[3])
        self.num_features = channels[3]
        self._init_weights()

    @staticmethod
    def _make_stage(blocks: int, in_channels: int, out_channels: int,
                    reduce: bool) -> nn.Sequential:
        layers: list[nn.Module] = [OSBlock(in_channels, out_channels)]
        layers += [OSBlock(out_channels, out_channels) for _ in range(1, blocks)]
        if reduce:  # transition: 1x1 conv, then 2x2 average pooling
            layers.append(nn.Sequential(Conv1x1(out_channels, out_channels),
                                        nn.AvgPool2d(2, stride=2)))
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for module in self.modules():
            if module_on_meta(module):
                continue
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.conv5(self.conv4(self.conv3(self.conv2(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def module_on_meta(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return isinstance(weight, torch.Tensor) and weight.device.type == "meta"


def build(config: OSNetConfig) -> PooledBackbone:
    trunk = OSNet(WIDTHS[config.width])
    return PooledBackbone(trunk, trunk.num_features, config.pooling, config.gem_p,
                          config.gem_trainable)

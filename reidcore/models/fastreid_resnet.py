"""ResNet as fast-reid's ``build_resnet_backbone`` makes it: optional IBN-a, optional
non-local blocks (AGW, SBS), and fast-reid's stem max-pool (kernel 3, stride 2, no padding,
``ceil_mode``: not torchvision's padded one, so the maps differ by a shifted window).

Module names follow fast-reid (``layer1.0.bn1.IN.weight``, ``NL_2.0.W.1.running_mean``), so
its checkpoints' ``backbone.*`` keys map one to one. Non-local blocks (Wang et al., 2018) as
fast-reid writes them: the embedded-Gaussian-free "dot product" form, divided by the number
of positions, with ``inter_channels = 1`` (fast-reid computes ``reduc_ratio // reduc_ratio``),
and a zero-initialised BN on the output branch; they follow the last ``n`` blocks of a
stage, ``non_local = (0, 2, 3, 0)`` per stage for ResNet-50.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from reidcore.models.backbone import PooledBackbone
from reidcore.models.config import FastReidResNetConfig
from reidcore.models.ibn import BottleneckIBN, ibn_stage

DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class NonLocal(nn.Module):
    """``x + BN(W(softmax-free attention(theta, phi) @ g))`` over all positions."""

    def __init__(self, channels: int, inter_channels: int = 1):
        super().__init__()
        self.inter_channels = inter_channels
        self.g = nn.Conv2d(channels, inter_channels, 1)
        output_norm = nn.BatchNorm2d(channels)
        self.W = nn.Sequential(nn.Conv2d(inter_channels, channels, 1), output_norm)
        self.theta = nn.Conv2d(channels, inter_channels, 1)
        self.phi = nn.Conv2d(channels, inter_channels, 1)
        if output_norm.weight.device.type != "meta":  # the block starts as the identity
            nn.init.zeros_(output_norm.weight)
            nn.init.zeros_(output_norm.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, inter = x.shape[0], self.inter_channels
        g_x = self.g(x).view(batch, inter, -1).permute(0, 2, 1)
        theta_x = self.theta(x).view(batch, inter, -1).permute(0, 2, 1)
        phi_x = self.phi(x).view(batch, inter, -1)
        affinity = torch.matmul(theta_x, phi_x)
        y = torch.matmul(affinity / affinity.shape[-1], g_x)
        y = y.permute(0, 2, 1).contiguous().view(batch, inter, *x.shape[2:])
        return self.W(y) + x


class FastReidResNet(nn.Module):
    """The trunk: ``forward_features`` gives the stage-4 map (2048 channels)."""

    def __init__(self, layers: tuple[int, int, int, int], ibn: bool, last_stride: int,
                 non_local: tuple[int, int, int, int]):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)
        self.layer1 = self._make_layer(64, layers[0], 1, ibn)
        self.layer2 = self._make_layer(128, layers[1], 2, ibn)
        self.layer3 = self._make_layer(256, layers[2], 2, ibn)
        self.layer4 = self._make_layer(512, layers[3], last_stride, False)
        self.num_features = 512 * BottleneckIBN.expansion
        self._init_weights()
        # after the init, as fast-reid does: the non-local blocks keep their own init
        widths = (256, 512, 1024, 2048)
        self.NL_1, self.NL_2, self.NL_3, self.NL_4 = (
            nn.ModuleList(NonLocal(width) for _ in range(count))
            for width, count in zip(widths, non_local, strict=True))
        # a stage's non-local blocks follow its last ``count`` residual blocks
        self.nl_after = [sorted(blocks - 1 - i for i in range(count))
                         for blocks, count in zip(layers, non_local, strict=True)]

    def _make_layer(self, planes: int, blocks: int, stride: int, ibn: bool) -> nn.Sequential:
        stage = ibn_stage(self.inplanes, planes, blocks, stride, ibn)
        self.inplanes = planes * BottleneckIBN.expansion
        return stage

    def _init_weights(self) -> None:
        for module in self.modules():
            weight = getattr(module, "weight", None)
            if not isinstance(weight, torch.Tensor) or weight.device.type == "meta":
                continue
            if isinstance(module, nn.Conv2d):
                n = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0, math.sqrt(2.0 / n))
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        stages = (self.layer1, self.layer2, self.layer3, self.layer4)
        blocks = (self.NL_1, self.NL_2, self.NL_3, self.NL_4)
        for stage, non_local, after in zip(stages, blocks, self.nl_after, strict=True):
            used = 0
            for index, block in enumerate(stage):
                x = block(x)
                if used < len(after) and index == after[used]:
                    x = non_local[used](x)
                    used += 1
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def build(config: FastReidResNetConfig) -> PooledBackbone:
    trunk = FastReidResNet(DEPTHS[config.depth], config.ibn, config.last_stride,
                           tuple(config.non_local))  # type: ignore[arg-type]
    return PooledBackbone(trunk, trunk.num_features, config.pooling, config.gem_p,
                          config.gem_trainable)

"""ResNet-IBN-a (Pan, Luo, Shi, Tang: "Two at Once: Enhancing Learning and Generalization
Capacities via IBN-Net", ECCV 2018), the variant fast-reid and FlipReID use.

In IBN-a, the BatchNorm after the first 1x1 convolution of every bottleneck in stages 1-3
(the ones with fewer than 512 planes) is replaced by IBN: instance norm (affine) on the first
half of the channels and batch norm on the rest. Stage 4 and the stem are unchanged. The
parameter count equals the plain ResNet's (IN affine + BN affine cover the same channels).
Module names follow the official release so its ``resnet50_ibn_a`` weights load as they are.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from reidcore.models.backbone import PooledBackbone
from reidcore.models.config import IbnResNetConfig
from reidcore.models.weights import load_weights, read_state_dict, weight_loading_enabled


class IBN(nn.Module):
    """Instance norm on ``int(planes * ratio)`` channels, batch norm on the others."""

    def __init__(self, planes: int, ratio: float = 0.5):
        super().__init__()
        self.instance_channels = int(planes * ratio)
        self.IN = nn.InstanceNorm2d(self.instance_channels, affine=True)
        self.BN = nn.BatchNorm2d(planes - self.instance_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept = self.instance_channels
        first, second = torch.split(x, [kept, x.shape[1] - kept], dim=1)
        return torch.cat((self.IN(first.contiguous()), self.BN(second.contiguous())), dim=1)


class BottleneckIBN(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, ibn: bool, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = IBN(planes) if ibn else nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)



def ibn_stage(inplanes: int, planes: int, blocks: int, stride: int,
              ibn: bool) -> nn.Sequential:
    """One ResNet stage of IBN-a bottlenecks (a projection shortcut on the first block
    when the stride or width changes); shared by the IBN-a ResNet and fast-reid's."""
    downsample = None
    if stride != 1 or inplanes != planes * BottleneckIBN.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * BottleneckIBN.expansion, kernel_size=1,
                      stride=stride, bias=False),
            nn.BatchNorm2d(planes * BottleneckIBN.expansion))
    width = planes * BottleneckIBN.expansion
    layers = [BottleneckIBN(inplanes, planes, ibn, stride, downsample)]
    layers += [BottleneckIBN(width, planes, ibn) for _ in range(1, blocks)]
    return nn.Sequential(*layers)

class ResNetIBN(nn.Module):
    """The trunk (no classifier): ``forward_features`` gives the stage-4 map."""

    def __init__(self, layers: tuple[int, int, int, int], last_stride: int = 1):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0], 1)
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], last_stride)
        self.num_features = 512 * BottleneckIBN.expansion
        self._init_weights()

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        stage = ibn_stage(self.inplanes, planes, blocks, stride, ibn=planes != 512)
        self.inplanes = planes * BottleneckIBN.expansion
        return stage

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module.weight.device.type != "meta":
                n = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                module.weight.data.normal_(0, math.sqrt(2.0 / n))
            elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.affine \
                    and module.weight.device.type != "meta":
                module.weight.data.fill_(1)
                module.bias.data.zero_()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


def build(config: IbnResNetConfig) -> PooledBackbone:
    trunk = ResNetIBN(DEPTHS[config.depth], last_stride=config.last_stride)
    if config.pretrained and weight_loading_enabled():
        load_weights(trunk, read_state_dict(config.pretrained), config.pretrained,
                     ignore_unexpected=("fc.",))
    return PooledBackbone(trunk, trunk.num_features, config.pooling, config.gem_p,
                          config.gem_trainable)

"""SA-Enc (the re-ID encoder) and SA-Dec (the texture decoder) of SAN.

SA-Enc wraps a core backbone whose trunk is ResNet-style (``conv1``, ``bn1``,
``act1``/``relu``, ``maxpool``, ``layer1``..``layer4``: timm ResNets, ``resnet_ibn_a``) so the
four stage maps can feed the decoder; the re-ID head is the official ``resnet50_fc512``:
global average pooling, Linear(C -> 512) + BatchNorm1d + ReLU (the feature v), classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from reidcore.api import ReidError
from torch import nn

from reid_plugin_san.config import SADecoderConfig

STEM = ("conv1", "bn1", "maxpool")
LAYERS = ("layer1", "layer2", "layer3", "layer4")


def resnet_trunk(backbone: nn.Module, name: str = "backbone") -> nn.Module:
    """The ResNet-style trunk of a core backbone (``PooledBackbone.trunk``), checked."""
    trunk = getattr(backbone, "trunk", backbone)
    missing = [a for a in (*STEM, *LAYERS) if not hasattr(trunk, a)]
    if not (hasattr(trunk, "act1") or hasattr(trunk, "relu")):
        missing.append("act1 (or relu)")
    if missing:
        raise ReidError(f"san needs a ResNet-style backbone whose stage maps it can read "
                        f"(timm resnet*, resnet_ibn_a); {name} ({type(trunk).__name__}) has no "
                        f"{', '.join(missing)}")
    return trunk


def stage_maps(trunk: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of layer1..layer4 (the decoder's inputs; layer4 is the re-ID map)."""
    act = trunk.act1 if hasattr(trunk, "act1") else trunk.relu
    x = trunk.maxpool(act(trunk.bn1(trunk.conv1(images))))
    maps = []
    for name in LAYERS:
        x = getattr(trunk, name)(x)
        maps.append(x)
    return maps


def stage_channels(trunk: nn.Module) -> list[int]:
    """Output channels of layer1..layer4 (from the last BN / conv of each stage)."""
    channels = []
    for name in LAYERS:
        last = [m for m in getattr(trunk, name).modules() if isinstance(m, nn.BatchNorm2d)]
        if not last:
            raise ReidError(f"san: cannot tell the channels of {name}")
        channels.append(int(last[-1].num_features))
    return channels


class SAEncoder(nn.Module):
    """SA-Enc: ``backbone`` trunk -> GAP -> fc block (v) -> classifier.

    Training mode returns ``{"logits", "features" (v), "maps" [layer1..layer4]}``;
    eval mode returns v (B x ``embedding_dim``), the re-ID feature used at inference.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, embedding_dim: int = 512):
        super().__init__()
        self.backbone = backbone
        trunk = resnet_trunk(backbone)
        width = int(getattr(backbone, "feature_dim", 0) or stage_channels(trunk)[-1])
        self.fc = nn.Sequential(nn.Linear(width, embedding_dim), nn.BatchNorm1d(embedding_dim),
                                nn.ReLU(inplace=True))
        self.classifier = nn.Linear(embedding_dim, max(int(num_classes), 1))
        self.embedding_dim = embedding_dim
        self._init_head()

    def _init_head(self) -> None:
        """The torchreid initialisation of the new layers: Linear N(0, 0.01), bias 0;
        BN weight 1, bias 0."""
        for module in (*self.fc.modules(), self.classifier):
            if getattr(module, "weight", None) is None or module.weight.device.type == "meta":
                continue
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm1d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def trunk(self) -> nn.Module:
        return getattr(self.backbone, "trunk", self.backbone)

    def head_parameters(self) -> list[nn.Parameter]:
        """fc block + classifier: frozen for the decoder-side update."""
        return [*self.fc.parameters(), *self.classifier.parameters()]

    def trunk_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def forward(self, images: torch.Tensor) -> dict[str, object] | torch.Tensor:
        maps = stage_maps(self.trunk, images)
        features = self.fc(maps[-1].mean(dim=(2, 3)))
        if not self.training:
            return features
        return {"logits": self.classifier(features), "features": features, "maps": maps}


# --- SA-Dec ---------------------------------------------------------------------------------


def _conv1x1_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """conv3x3 (no bias) + BN + ReLU + conv3x3 (no bias) + BN, plus the identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class UpBlock(nn.Module):
    """Residual block at ``cin``, ReLU, then x2 bilinear up-sampling + reflection pad 1 +
    conv3x3 (bias) ``cin -> cout`` (up-sample-then-convolve avoids checkerboards)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.res = ResidualBlock(cin)
        self.act = nn.ReLU(inplace=True)
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"),
                                nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.res(x)))


class SADecoder(nn.Module):
    """SA-Dec (see :class:`~reid_plugin_san.config.SADecoderConfig`).

    ``forward(l1, l2, l3, l4, size=None)`` returns ``{"texture": B x 3 x th x tw,
    "maps": [s1, s2, s3, s4]}``; ``size`` = (th, tw), default the decoder map's height and
    twice its width. At 256x128 with ResNet-50: s1 256x32x16, s2 64x64x32, s3 32x128x64,
    s4 16x256x128, texture 3x256x256.
    """

    def __init__(self, config: SADecoderConfig | None = None):
        super().__init__()
        config = config or SADecoderConfig()
        c1, c2, c3, c4 = config.encoder_channels
        w0, w1, w2, w3, w4 = config.widths
        self.reduce = _conv1x1_bn_relu(c4, w0)
        self.embed3 = _conv1x1_bn_relu(c3, w0)
        self.embed2 = _conv1x1_bn_relu(c2, w1)
        self.embed1 = _conv1x1_bn_relu(c1, w2)
        self.up1, self.up2 = UpBlock(w0, w1), UpBlock(w1, w2)
        self.up3, self.up4 = UpBlock(w2, w3), UpBlock(w3, w4)
        self.final = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(w4, 3, 7))
        self.encoder_channels = list(config.encoder_channels)
        self.init_weights(config.init_gain)

    def init_weights(self, gain: float = 0.02) -> None:
        """The code's init: conv weights Xavier-normal (``gain``), biases 0; BN weights
        N(1, ``gain``), biases 0."""
        for module in self.modules():
            weight = getattr(module, "weight", None)
            if weight is None or weight.device.type == "meta":
                continue
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_normal_(weight, gain=gain)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(weight, 1.0, gain)
                nn.init.zeros_(module.bias)

    def forward(self, l1: torch.Tensor, l2: torch.Tensor, l3: torch.Tensor, l4: torch.Tensor,
                size: Sequence[int] | None = None) -> dict[str, object]:
        if l4.shape[-2:] != l3.shape[-2:]:
            raise ReidError(f"SA-Dec needs layer3 and layer4 maps of one size (an encoder "
                            f"with last stride 1); got {tuple(l3.shape[-2:])} and "
                            f"{tuple(l4.shape[-2:])}: set the backbone's last_stride = 1")
        s1 = self.up1(self.reduce(l4) + self.embed3(l3))
        s2 = self.up2(self.embed2(l2) + s1)
        s3 = self.up3(self.embed1(l1) + s2)
        s4 = self.up4(s3)
        out = self.final(s4)
        height, width = (int(size[0]), int(size[1])) if size else (out.shape[2],
                                                                     2 * out.shape[3])
        texture = F.interpolate(out, size=(height, width), mode="bilinear", align_corners=True)
        return {"texture": texture, "maps": [s1, s2, s3, s4]}


def build_decoder(config: SADecoderConfig) -> SADecoder:
    return SADecoder(config)


def decoder_example() -> tuple[torch.Tensor, ...]:
    """Stage maps of a 2 x 3 x 64 x 32 batch through a ResNet-50 with last stride 1."""
    generator = torch.Generator().manual_seed(0)
    shapes = ((256, 16, 8), (512, 8, 4), (1024, 4, 2), (2048, 4, 2))
    return tuple(torch.randn(2, *shape, generator=generator) for shape in shapes)

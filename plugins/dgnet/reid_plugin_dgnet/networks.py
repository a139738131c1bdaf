"""DG-Net's four networks: appearance encoder Ea, structure encoder Es, decoder G, and the
multi-scale discriminator D (see the README for the layer tables and parameter counts).

Es, G and D are registered generator components (``dgnet_structure_encoder``,
``dgnet_decoder``, ``dgnet_discriminator``); Ea wraps the recipe's ``[backbone]`` trunk
(a ResNet-50 with last stride 1 at paper size) with the two identity heads.
"""

from __future__ import annotations

import torch
from reidcore.api import ReidError
from torch import nn
from torch.nn import functional as F

from reid_plugin_dgnet.blocks import (
    ASPP,
    MLP,
    AdaIN,
    ResBlock,
    conv_block,
    gaussian_init,
    kaiming_init,
)
from reid_plugin_dgnet.config import DecoderConfig, DiscriminatorConfig, StructureEncoderConfig


def to_gray(images: torch.Tensor) -> torch.Tensor:
    """Es's input: the mean of the three (normalised) channels, B x 1 x H x W."""
    return images.mean(1, keepdim=True)


class StructureEncoder(nn.Module):
    """Es: gray image -> structure code (``8 dim`` x H/4 x W/4 with ASPP)."""

    def __init__(self, config: StructureEncoderConfig):
        super().__init__()
        d = config.dim
        layers: list[nn.Module] = [
            conv_block(config.input_channels, d, 3, 2, 1, "in"),
            conv_block(d, 2 * d, 3, 1, 1, "in"),
            conv_block(2 * d, 2 * d, 3, 1, 1, "in"),
            conv_block(2 * d, 4 * d, 3, 2, 1, "in"),
            *(ResBlock(4 * d, "in") for _ in range(config.res_blocks)),
        ]
        if config.aspp:
            layers.append(ASPP(4 * d, tuple(config.dilations)))
        self.model = nn.Sequential(*layers)
        self.output_channels = config.output_channels
        self.largest_dilation = max(config.dilations) if config.aspp else 0
        kaiming_init(self)

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        side = min(-(-gray.shape[-2] // 4), -(-gray.shape[-1] // 4))
        if self.largest_dilation >= side:
            raise ReidError(f"the structure map of a {gray.shape[-2]}x{gray.shape[-1]} image "
                            f"is {side} pixels wide, too narrow for ASPP dilation "
                            f"{self.largest_dilation} (reflection padding): set "
                            f"generators.structure.dilations to rates below {side}, or use "
                            f"larger images")
        return self.model(gray)


class Decoder(nn.Module):
    """G: ``forward(structure, appearance_code)`` -> image in the loader's normalised space.

    The appearance code (B x ``code_dim``) is cut into ``res_blocks`` consecutive chunks;
    chunk k goes through ``mlp_w[k]`` and ``mlp_b[k]`` to the scales and biases of the two
    AdaIN layers of residual block k."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        d, n = config.dim, config.res_blocks
        self.config = config
        self.res = nn.Sequential(*(ResBlock(d, "adain") for _ in range(n)))
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), conv_block(d, d // 2, 5, 1, 2, "ln"),
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv_block(d // 2, d // 4, 5, 1, 2, "ln"),
            conv_block(d // 4, d // 4, 3, 1, 1), conv_block(d // 4, d // 4, 3, 1, 1),
            conv_block(d // 4, 3, 1, act=False))
        chunk = config.code_dim // n
        self.mlp_w = nn.ModuleList(MLP(chunk, config.mlp_dim, 2 * d) for _ in range(n))
        self.mlp_b = nn.ModuleList(MLP(chunk, config.mlp_dim, 2 * d) for _ in range(n))
        self.adain = [m for m in self.res.modules() if isinstance(m, AdaIN)]
        kaiming_init(self)

    def adain_parameters(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scales, biases), each B x (2 * res_blocks * dim), in AdaIN-layer order."""
        chunks = code.reshape(code.shape[0], -1).chunk(self.config.res_blocks, dim=1)
        scales = torch.cat([mlp(c) for mlp, c in zip(self.mlp_w, chunks, strict=True)], 1)
        biases = torch.cat([mlp(c) for mlp, c in zip(self.mlp_b, chunks, strict=True)], 1)
        return scales, biases

    def forward(self, structure: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        scales, biases = self.adain_parameters(code)
        d = self.config.dim
        for j, layer in enumerate(self.adain):
            layer.weight = scales[:, j * d:(j + 1) * d]
            layer.bias = biases[:, j * d:(j + 1) * d]
        try:
            return self.up(self.res(structure))
        finally:
            for layer in self.adain:  # no graph kept alive between calls
                layer.weight = layer.bias = None


class PatchDiscriminator(nn.Module):
    """One scale of D: a patch map of real/fake scores."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        d = config.dim
        layers: list[nn.Module] = [conv_block(config.input_channels, d, 1)]
        width = d
        for i in range(config.layers):
            out = width * 2 if i == config.layers - 1 else width
            layers += [conv_block(width, width, 3, 1, 1), conv_block(width, out, 3, 2, 1)]
            width = out
        layers += [ResBlock(width, "none") for _ in range(config.res_blocks)]
        layers.append(nn.Conv2d(width, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MultiScaleDiscriminator(nn.Module):
    """D: ``forward(images)`` -> a list of patch maps, one per scale (full size first)."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(config) for _ in range(config.scales))
        gaussian_init(self)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i, scale in enumerate(self.scales):
            if i:
                images = F.avg_pool2d(images, 3, 2, 1, count_include_pad=False)
            outputs.append(scale(images))
        return outputs


class ClassBlock(nn.Module):
    """Linear -> BN -> Dropout -> Linear: one identity head of Ea. ``embed`` stops before
    the classifier (the retrieval feature)."""

    def __init__(self, cin: int, num_classes: int, dropout: float, bottleneck: int = 512):
        super().__init__()
        self.fc = nn.Linear(cin, bottleneck)
        self.bn = nn.BatchNorm1d(bottleneck)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(bottleneck, num_classes)
        nn.init.kaiming_normal_(self.fc.weight, a=0, mode="fan_out")
        nn.init.zeros_(self.fc.bias)
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.embed(x)))


class AppearanceEncoder(nn.Module):
    """Ea: the re-ID network. ``forward(images)`` -> (code, primary logits, fine logits).

    The appearance code (``stripes`` horizontal max-pooled stripes, flattened channel-major
    to C x stripes) is detached here, as the official code does: no generator loss ever
    reaches Ea through the code. The heads see the global max-pooled feature."""

    def __init__(self, trunk: nn.Module, num_classes: int, stripes: int = 4,
                 bottleneck: int = 512, primary_dropout: float = 0.5,
                 fine_dropout: float = 0.75):
        super().__init__()
        self.trunk = trunk
        self.channels = int(trunk.feature_dim)
        self.stripes = stripes
        self.code_dim = self.channels * stripes
        self.primary = ClassBlock(self.channels, num_classes, primary_dropout, bottleneck)
        self.fine = ClassBlock(self.channels, num_classes, fine_dropout, bottleneck)
        self.feature_dim = 2 * bottleneck

    def code_of(self, maps: torch.Tensor) -> torch.Tensor:
        return F.adaptive_max_pool2d(maps, (self.stripes, 1)).flatten(1).detach()

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The appearance code only (B x code_dim, detached)."""
        return self.code_of(self.trunk.forward_features(images))

    def forward(self, images: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        maps = self.trunk.forward_features(images)
        pooled = F.adaptive_max_pool2d(maps, 1).flatten(1)
        return self.code_of(maps), self.primary(pooled), self.fine(pooled)

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two 512-d bottleneck features (Linear + BN, no dropout, no classifier)."""
        pooled = F.adaptive_max_pool2d(self.trunk.forward_features(images), 1).flatten(1)
        return self.primary.embed(pooled), self.fine.embed(pooled)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The backbone at the base LR, both heads at ``head_lr_mult`` times it."""
        return {"backbone": list(self.trunk.parameters()),
                "heads": [*self.primary.parameters(), *self.fine.parameters()]}


# --- build functions and contract examples --------------------------------------------------


def build_structure_encoder(config: StructureEncoderConfig, **_context: object
                            ) -> StructureEncoder:
    return StructureEncoder(config)


def build_decoder(config: DecoderConfig, **_context: object) -> Decoder:
    return Decoder(config)


def build_discriminator(config: DiscriminatorConfig, **_context: object
                        ) -> MultiScaleDiscriminator:
    return MultiScaleDiscriminator(config)


def gray_example() -> torch.Tensor:
    return torch.randn(2, 1, 128, 64)  # a 32x16 map: wide enough for dilation 9


def decoder_example() -> tuple[torch.Tensor, torch.Tensor]:
    """Default decoder: 128-channel structure (64x32 images: 16x8) and an 8192 code."""
    return torch.randn(2, 128, 16, 8), torch.randn(2, 8192)


def image_example() -> torch.Tensor:
    return torch.randn(2, 3, 64, 32)

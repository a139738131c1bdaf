"""The FlipReID network: a ResNet-style trunk shared up to stage 3, stage 4 duplicated into a
global branch and a regional (horizontal stripes) branch, GeM pooling with a trainable
exponent and clipping to [0, 1] per embedding, and one BN + linear classifier per embedding.

Written from the method notes (``design/methods/flipreid.md``), not from the TensorFlow code.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from reidcore.api import GeneralizedMeanPooling, Registry
from torch import nn

STAGES = ("layer1", "layer2", "layer3", "layer4")

# The three backbones of the paper, as components of the core (see ``backbone_config``).
BACKBONES = {
    "resnet50": ("timm", {"model": "resnet50"}),
    "resnet50_ibn_a": ("resnet_ibn_a", {"depth": 50}),
    "resnest50": ("timm", {"model": "resnest50d"}),
}


class ClippedGeM(nn.Module):
    """GeM pooling ``mean(max(x, 1e-6) ** p) ** (1 / p)`` with a trainable scalar ``p``,
    then (``clip``) clipping to [0, 1] as the official code does after pooling."""

    def __init__(self, p: float = 1.0, trainable: bool = True, clip: bool = True):
        super().__init__()
        self.gem = GeneralizedMeanPooling(p, eps=1e-6, trainable=trainable)
        self.clip = clip

    @property
    def p(self) -> nn.Parameter:
        return self.gem.p

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        pooled = self.gem(maps)
        return pooled.clamp(0.0, 1.0) if self.clip else pooled


class ClassificationHead(nn.Module):
    """BatchNorm1d (affine) then a bias-free linear layer with weights ~ N(0, 0.001)."""

    def __init__(self, dim: int, num_classes: int, eps: float = 2e-5, momentum: float = 0.01):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim, eps=eps, momentum=momentum)
        self.fc = nn.Linear(dim, num_classes, bias=False)
        if self.fc.weight.device.type != "meta":
            nn.init.normal_(self.fc.weight, std=0.001)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(embedding))


def split_resnet(backbone: nn.Module) -> tuple[nn.Sequential, nn.Module]:
    """Cut a ResNet-style backbone into (stem + stages 1-3, stage 4).

    ``backbone`` is a core backbone component (its ``trunk`` holds the network) or the
    network itself; it must have children ``layer1`` ... ``layer4``, and every child before
    ``layer1`` is taken as the stem (timm ResNet/ResNeSt, the core's ResNet-IBN-a).
    """
    network = getattr(backbone, "trunk", backbone)
    children = OrderedDict(network.named_children())
    missing = [name for name in STAGES if name not in children]
    if missing:
        raise ValueError(
            f"flipreid needs a ResNet-style backbone with stages layer1..layer4 (timm resnet* or "
            f"resnest* models, resnet_ibn_a); {type(network).__name__} has no "
            f"{', '.join(missing)}")
    trunk = OrderedDict()
    for name, child in children.items():
        if name == "layer1":
            break
        trunk[name] = child
    for name in STAGES[:3]:
        trunk[name] = children[name]
    return nn.Sequential(trunk), children["layer4"]


def stripe_bounds(height: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` horizontal stripes of equal height ``height // parts``; the last one also
    takes the remainder."""
    size = height // parts
    if size == 0:
        raise ValueError(f"a feature map of height {height} cannot be cut into {parts} stripes")
    bounds = [(i * size, (i + 1) * size) for i in range(parts)]
    bounds[-1] = (bounds[-1][0], height)
    return bounds


class FlipReIDNetwork(nn.Module):
    """The inference network of FlipReID plus its classification heads.

    ``embeddings(images)`` returns ``[global (C), stripe 1 (C / n), ...,
    stripe n (C / n)]`` (C = 2048 for ResNet-50, n = ``region_num``); ``classify`` maps
    embeddings to logits with one head each. ``backbone_modules()`` are the pretrained
    parts (trunk and both stage-4 copies); ``freeze_backbone(True)`` stops their gradients
    and keeps their BatchNorms in inference mode, as Keras does for frozen layers.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int,
                 region_num: int = 2, gem_p: float = 1.0, gem_trainable: bool = True,
                 clip: bool = True, bn_eps: float = 2e-5, bn_momentum: float = 0.01):
        super().__init__()
        if feature_dim % region_num:
            raise ValueError(f"feature_dim {feature_dim} is not divisible by region_num "
                             f"{region_num}")
        trunk, stage4 = split_resnet(backbone)
        self.trunk = trunk
        self.global_stage4 = stage4
        self.regional_stage4 = copy.deepcopy(stage4)  # same initial weights, separate copy
        self.region_num = region_num
        region_dim = feature_dim // region_num
        self.global_pool = ClippedGeM(gem_p, gem_trainable, clip)
        self.regional_convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(feature_dim, region_dim, 3, padding=1, bias=True),
                          nn.ReLU(inplace=True))
            for _ in range(region_num))
        self.regional_pools = nn.ModuleList(
            ClippedGeM(gem_p, gem_trainable, clip) for _ in range(region_num))
        self.embedding_dims = [feature_dim] + [region_dim] * region_num
        self.heads = nn.ModuleList(ClassificationHead(dim, num_classes, bn_eps, bn_momentum)
                                   for dim in self.embedding_dims)
        self._backbone_frozen = False
        for block in self.regional_convs:
            conv = block[0]
            if conv.weight.device.type != "meta":  # Keras defaults: Glorot uniform, zero bias
                nn.init.xavier_uniform_(conv.weight)
                nn.init.zeros_(conv.bias)

    @property
    def feature_dim(self) -> int:
        """Length of the inference vector (the embeddings concatenated)."""
        return sum(self.embedding_dims)

    def backbone_modules(self) -> list[nn.Module]:
        return [self.trunk, self.global_stage4, self.regional_stage4]

    def gem_exponents(self) -> list[nn.Parameter]:
        return [self.global_pool.p] + [pool.p for pool in self.regional_pools]

    def freeze_backbone(self, frozen: bool) -> None:
        self._backbone_frozen = frozen
        for module in self.backbone_modules():
            module.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> FlipReIDNetwork:
        super().train(mode)
        if self._backbone_frozen:
            for module in self.backbone_modules():
                module.eval()
        return self

    def forward(self, images: torch.Tensor, flip: bool = False,
                classify: bool = False) -> dict[str, list[torch.Tensor]]:
        """One call for a whole training step (so a DDP wrapper sees one forward):

        ``original``: the embeddings of ``images``; with ``flip`` also ``flipped`` (of the
        horizontally flipped images, a second call with its own BN batch statistics) and
        ``merged`` = (original + flipped) / 2, else ``merged`` = ``original``; with
        ``classify``, ``logits`` of the heads on ``merged``.
        """
        original = self.embeddings(images)
        out = {"original": original, "merged": original}
        if flip:
            flipped = self.embeddings(images.flip(3))
            out["flipped"] = flipped
            out["merged"] = [(a + b) / 2 for a, b in zip(original, flipped, strict=True)]
        if classify:
            out["logits"] = self.classify(out["merged"])
        return out

    def embeddings(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``[global, stripe 1, ..., stripe n]`` embeddings of ``images``."""
        shared = self.trunk(images)
        embeddings = [self.global_pool(self.global_stage4(shared))]
        regional = self.regional_stage4(shared)
        for (top, bottom), conv, pool in zip(stripe_bounds(regional.shape[2], self.region_num),
                                             self.regional_convs, self.regional_pools,
                                             strict=True):
            embeddings.append(pool(conv(regional[:, :, top:bottom])))
        return embeddings

    def classify(self, embeddings: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [head(e) for head, e in zip(self.heads, embeddings, strict=True)]


def backbone_config(name: str, registry: Registry, pretrained: str = "") -> tuple[str, Any]:
    """The core component and config for one of the paper's backbones (last stride 1):
    ``resnet50`` (timm), ``resnet50_ibn_a`` (the core's ResNet-IBN-a) or ``resnest50``
    (timm ``resnest50d``)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown FlipReID backbone {name!r}; expected one of {sorted(BACKBONES)}")
    component, options = BACKBONES[name]
    spec = registry.get("backbone", component)
    return component, spec.config(last_stride=1, pretrained=pretrained, **options)


def build_backbone(name: str, registry: Registry, pretrained: str = "") -> nn.Module:
    """One of the paper's backbones, built through the run's registry
    (``context.registry``; no download)."""
    component, config = backbone_config(name, registry, pretrained)
    return registry.get("backbone", component).create(config)


def build_network(backbone: nn.Module, num_classes: int, **options: Any) -> FlipReIDNetwork:
    """The FlipReID network on a core backbone component (``feature_dim`` from it)."""
    return FlipReIDNetwork(backbone, int(backbone.feature_dim), num_classes, **options)

"""Recipe options of the core's backbones (no torch import: read by ``reid check``)."""

from __future__ import annotations

from typing import Literal

import attrs


def _positive(_instance, attribute, value) -> None:
    if value <= 0:
        raise ValueError(f"'{attribute.name}' must be > 0: {value}")


@attrs.define
class TimmBackboneConfig:
    """Any timm CNN as a re-ID backbone.

    ``pretrained``: ``""`` (random init, the default), ``"hub"`` (timm's pretrained weights;
    needs the network, used only when the recipe says so) or a local ``.pth``/``.safetensors``
    file (keys must match the timm model; its classifier keys are ignored).
    ``last_stride = 1`` removes the stride of the last stage (ResNet-style nets with
    ``layer4``), doubling the feature map height and width as re-ID baselines do.
    """

    model: str = attrs.field(default="resnet50", validator=attrs.validators.min_len(1))
    last_stride: Literal[1, 2] = 1
    pooling: Literal["avg", "max", "gem"] = "avg"
    gem_p: float = attrs.field(default=3.0, validator=_positive)
    gem_trainable: bool = True
    pretrained: str = ""


@attrs.define
class IbnResNetConfig:
    """ResNet-50-IBN-a (Pan et al., 2018): instance + batch norm in the first 1x1 conv of
    each bottleneck of stages 1-3. ``pretrained``: ``""`` or a local weights file in the
    layout of the official IBN-Net release (``resnet50_ibn_a-d9d0bb7b.pth``)."""

    depth: Literal[50, 101] = 50
    last_stride: Literal[1, 2] = 1
    pooling: Literal["avg", "max", "gem"] = "avg"
    gem_p: float = attrs.field(default=3.0, validator=_positive)
    gem_trainable: bool = True
    pretrained: str = ""


@attrs.define
class OSNetConfig:
    """OSNet (Zhou et al., ICCV 2019) as torchreid builds it, random init (timm has no
    OSNet; ``reid import torchreid`` brings trained weights). ``width``: torchreid's
    ``osnet_x1_0`` (512 channels), ``x0_75``, ``x0_5``, ``x0_25``."""

    width: Literal["x1_0", "x0_75", "x0_5", "x0_25"] = "x1_0"
    pooling: Literal["avg", "max", "gem"] = "avg"
    gem_p: float = attrs.field(default=3.0, validator=_positive)
    gem_trainable: bool = True


def _four_counts(_instance, attribute, value) -> None:
    if len(value) != 4 or any(int(v) < 0 for v in value):
        raise ValueError(f"'{attribute.name}' must be four counts >= 0 (one per stage), "
                         f"got {list(value)!r}")


@attrs.define
class FastReidResNetConfig:
    """ResNet-50/101 as fast-reid builds it: ``ibn`` (IBN-a in stages 1-3), ``non_local``
    blocks after the last blocks of each stage (AGW and SBS use ``[0, 2, 3, 0]``; BoT none)
    and fast-reid's un-padded ``ceil_mode`` stem max-pool. Random init; ``reid import
    fastreid`` brings trained weights."""

    depth: Literal[50, 101] = 50
    ibn: bool = False
    non_local: tuple[int, ...] = attrs.field(default=(0, 0, 0, 0), converter=tuple,
                                             validator=_four_counts)
    last_stride: Literal[1, 2] = 1
    pooling: Literal["avg", "max", "gem"] = "avg"
    gem_p: float = attrs.field(default=3.0, validator=_positive)
    gem_trainable: bool = True

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

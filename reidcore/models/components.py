"""The core's backbone components (registered by ``reidcore.builtin``)."""

from __future__ import annotations

from reidcore.models.config import (
    FastReidResNetConfig,
    IbnResNetConfig,
    OSNetConfig,
    TimmBackboneConfig,
)
from reidcore.registry import ComponentSpec


def backbone_specs() -> list[ComponentSpec]:
    return [
        ComponentSpec(name="timm", kind="backbone", config=TimmBackboneConfig,
                      build="reidcore.models.timm_backbone:build",
                      summary="any timm CNN (model = \"resnet50\", ...) with last_stride and "
                              "avg/max/GeM pooling",
                      hint="reidcore.models.components:timm_hint"),
        ComponentSpec(name="resnet_ibn_a", kind="backbone", config=IbnResNetConfig,
                      build="reidcore.models.ibn:build",
                      summary="ResNet-50/101-IBN-a (instance-batch norm), as in fast-reid"),
        ComponentSpec(name="osnet", kind="backbone", config=OSNetConfig,
                      build="reidcore.models.osnet:build",
                      summary="OSNet (omni-scale network), torchreid's osnet_x1_0 and "
                              "narrower widths"),
        ComponentSpec(name="fastreid_resnet", kind="backbone", config=FastReidResNetConfig,
                      build="reidcore.models.fastreid_resnet:build",
                      summary="ResNet-50/101 as fast-reid builds it: IBN-a and non-local "
                              "blocks optional (BoT, AGW, SBS)"),
    ]


def timm_hint(name: str) -> str | None:
    """A backbone name that is a timm model (``resnet50``) is reached through ``timm``."""
    import timm

    if not timm.is_model(name):
        return None
    return f"'{name}' is a timm model: use name = \"timm\" with model = \"{name}\""

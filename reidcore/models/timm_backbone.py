"""Any timm CNN as a backbone, with ``last_stride`` and optional local or hub weights."""

from __future__ import annotations

from typing import Any

from torch import nn

from reidcore.errors import ReidError
from reidcore.models.backbone import PooledBackbone
from reidcore.models.config import TimmBackboneConfig
from reidcore.models.weights import load_weights, read_state_dict, weight_loading_enabled


def set_last_stride_one(model: nn.Module, name: str = "model") -> None:
    """Remove the downsampling of the first block of ``layer4`` (convs and avg-pool shortcut)."""
    layer4 = getattr(model, "layer4", None)
    if layer4 is None or not len(layer4):
        raise ReidError(f"last_stride = 1 needs a ResNet-style model with 'layer4'; '{name}' has "
                        f"none (set last_stride = 2 for it)")
    changed = 0
    for module in layer4[0].modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (1, 1)
            changed += 1
        elif isinstance(module, (nn.AvgPool2d,)) and module.stride not in (1, (1, 1)):
            # ResNet-D shortcuts and ResNeSt's "avd" pool: a kernel-1, stride-1 pool is the
            # identity; its padding must go too (PyTorch rejects padding > kernel / 2).
            module.stride = 1
            module.kernel_size = 1
            module.padding = 0
            changed += 1
    if not changed:
        raise ReidError(f"last_stride = 1: found no strided layer in layer4[0] of '{name}'")


def create_timm_trunk(config: TimmBackboneConfig) -> Any:
    import timm

    if not timm.is_model(config.model):
        from reidcore.errors import did_you_mean

        raise ReidError(f"unknown timm model '{config.model}'"
                        f"{did_you_mean(config.model, timm.list_models())}")
    if not weight_loading_enabled():  # reid check --build: shapes only, offline
        return timm.create_model(config.model, pretrained=False, num_classes=0, global_pool="")
    hub = config.pretrained == "hub"
    try:
        trunk = timm.create_model(config.model, pretrained=hub, num_classes=0, global_pool="")
    except Exception as exc:
        if hub:
            raise ReidError(f"could not get pretrained weights for '{config.model}' from the "
                            f"hub (is the network reachable?): {exc}") from None
        raise
    if config.pretrained and not hub:
        state = read_state_dict(config.pretrained)
        classifier = getattr(trunk, "default_cfg", {}).get("classifier", "fc")
        load_weights(trunk, state, config.pretrained,
                     ignore_unexpected=(f"{classifier}.", "fc.", "classifier.", "head."))
    return trunk


def build(config: TimmBackboneConfig) -> PooledBackbone:
    trunk = create_timm_trunk(config)
    if config.last_stride == 1:
        set_last_stride_one(trunk, config.model)
    return PooledBackbone(trunk, int(trunk.num_features), config.pooling, config.gem_p,
                          config.gem_trainable)

"""The core's loss components (registered by ``reidcore.builtin``).

Build functions accept the optional context ``num_classes`` and ``feature_dim`` (the
baseline passes them; losses that do not need them ignore them).
"""

from __future__ import annotations

from reidcore.losses.config import CenterConfig, CrossEntropyConfig, TripletConfig
from reidcore.registry import ComponentSpec

_MODULE = "reidcore.losses.losses"


def loss_specs() -> list[ComponentSpec]:
    return [
        ComponentSpec(name="cross_entropy", kind="loss", config=CrossEntropyConfig,
                      build=f"{_MODULE}:build_cross_entropy",
                      summary="identity cross-entropy with label smoothing",
                      example=f"{_MODULE}:example_logits"),
        ComponentSpec(name="triplet", kind="loss", config=TripletConfig,
                      build=f"{_MODULE}:build_triplet",
                      summary="batch-hard triplet loss, margin or soft margin",
                      example=f"{_MODULE}:example_features"),
        ComponentSpec(name="center", kind="loss", config=CenterConfig,
                      build=f"{_MODULE}:build_center",
                      summary="center loss with learned class centers (own SGD optimizer)",
                      example=f"{_MODULE}:example_center"),
    ]

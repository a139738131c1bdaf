"""The core's loss components (registered by ``reidcore.builtin``).

Build functions accept the optional context ``num_classes`` and ``feature_dim`` (the
baseline passes them; losses that do not need them ignore them).
"""

from __future__ import annotations

from reidcore.losses.config import (
    ArcFaceConfig,
    CenterConfig,
    CircleConfig,
    CosFaceConfig,
    CrossEntropyConfig,
    TripletConfig,
    WeightedTripletConfig,
)
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
        ComponentSpec(name="circle", kind="loss", config=CircleConfig,
                      build=f"{_MODULE}:build_circle",
                      summary="pairwise circle loss (m 0.25, gamma 128)",
                      example=f"{_MODULE}:example_features"),
        ComponentSpec(name="weighted_triplet", kind="loss", config=WeightedTripletConfig,
                      build=f"{_MODULE}:build_weighted_triplet",
                      summary="AGW's weighted regularised triplet (softmax-weighted, no margin)",
                      example=f"{_MODULE}:example_features"),
        ComponentSpec(name="arcface", kind="loss", config=ArcFaceConfig,
                      build=f"{_MODULE}:build_arcface",
                      summary="ArcFace head with its own class weights (scale 64, margin 0.5)",
                      example=f"{_MODULE}:example_neck_features"),
        ComponentSpec(name="cosface", kind="loss", config=CosFaceConfig,
                      build=f"{_MODULE}:build_cosface",
                      summary="CosFace head with its own class weights (scale 64, margin 0.4)",
                      example=f"{_MODULE}:example_neck_features"),
    ]

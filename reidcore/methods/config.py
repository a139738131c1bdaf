"""Recipe options of the core's methods (no torch import)."""

from __future__ import annotations

from typing import Literal

import attrs


@attrs.define
class BaselineConfig:
    """The strong baseline (Luo et al., 2019): backbone -> [embedding] -> BNNeck -> classifier.

    Losses come from the recipe's ``[[losses]]`` (default: cross_entropy with label smoothing
    0.1 and triplet with margin 0.3, weight 1 each); triplet and center losses see
    ``outputs["features"]`` (before the neck), the classifier the neck's output.
    ``embed`` returns the neck's output (``retrieval = "after_neck"``) or the feature before it.
    """

    neck: Literal["bnneck", "none"] = "bnneck"
    embedding_dim: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """A linear embedding layer to this size before the neck (0 = none)."""
    retrieval: Literal["after_neck", "before_neck"] = "after_neck"
    embedding_head: Literal["linear", "linear_bn_relu"] = "linear"
    """The embedding layer: ``linear`` (with bias), or ``linear_bn_relu`` (Linear with bias,
    BatchNorm1d, ReLU: torchreid's ``fc`` of OSNet and resnet50_fc512)."""
    classifier_bias: bool = False
    """Give the identity classifier a bias (torchreid's classifiers have one)."""

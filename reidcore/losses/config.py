"""Recipe options of the core's losses (no torch import)."""

from __future__ import annotations

import attrs


def _non_negative(_instance, attribute, value) -> None:
    if value < 0:
        raise ValueError(f"'{attribute.name}' must be >= 0: {value}")


def _probability(_instance, attribute, value) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"'{attribute.name}' must be in [0, 1): {value}")


@attrs.define
class CrossEntropyConfig:
    """Identity cross-entropy on ``outputs[input]`` (logits) against ``batch["pids"]``;
    ``label_smoothing`` eps gives the target (1 - eps) one-hot + eps / num_classes."""

    label_smoothing: float = attrs.field(default=0.1, validator=_probability)
    input: str = "logits"


@attrs.define
class TripletConfig:
    """Batch-hard triplet loss (Hermans et al., 2017) on ``outputs[input]``.

    Per anchor: hardest positive d_ap (largest distance, same id) and hardest negative d_an
    (smallest distance, other id); loss = mean(relu(d_ap - d_an + margin)), or with
    ``soft_margin`` mean(softplus(d_ap - d_an)) and no margin: the soft-margin triplet of the
    same paper (fast-reid's ``TripletLoss`` with ``MARGIN = 0``, ``HARD_MINING = True``).
    ``normalize`` L2-normalises the features first. Distances are Euclidean,
    sqrt(max(d^2, 1e-12))."""

    margin: float = attrs.field(default=0.3, validator=_non_negative)
    soft_margin: bool = False
    normalize: bool = False
    input: str = "features"


@attrs.define
class CenterConfig:
    """Center loss (Wen et al., 2016) as in the strong baseline's code: the batch mean of
    squared Euclidean distances ``||f_i - c_{y_i}||^2`` to learned class centers.

    ``num_classes`` / ``feature_dim`` = 0 take the run's values (given by the method); built
    outside a run with 0, they default to 751 classes x 2048 dims (Market-1501, ResNet-50).
    The centers are trained by the method's ``center`` optimizer (SGD, ``lr``); their
    gradient is divided by the loss weight, as in the strong baseline."""

    num_classes: int = attrs.field(default=0, validator=_non_negative)
    feature_dim: int = attrs.field(default=0, validator=_non_negative)
    lr: float = attrs.field(default=0.5, validator=_non_negative)
    input: str = "features"


@attrs.define
class CircleConfig:
    """Pairwise circle loss (Sun et al., 2020), as fast-reid's ``pairwise_circleloss``, on
    ``outputs[input]`` (L2-normalised; cosine similarities s).

    Per anchor, over its positives p (same id, itself excluded) and negatives n:
    ``softplus(logsumexp_p(-gamma a_p (s_p - (1 - m))) + logsumexp_n(gamma a_n (s_n - m)))``
    with the detached weights ``a_p = relu(1 + m - s_p)``, ``a_n = relu(s_n + m)``; averaged
    over the anchors that have a positive and a negative. Defaults: the paper's person re-ID
    values and fast-reid's ``MODEL.LOSSES.CIRCLE`` (m = 0.25, gamma = 128)."""

    margin: float = attrs.field(default=0.25, validator=_non_negative)
    gamma: float = attrs.field(default=128.0, validator=_non_negative)
    input: str = "features"


@attrs.define
class ArcFaceConfig:
    """ArcFace head (Deng et al., 2019): cross-entropy on ``scale * cos(theta_j)`` between the
    L2-normalised ``outputs[input]`` and the loss's own L2-normalised class weights, with
    ``cos(theta_y + margin)`` for the true class (``cos(theta_y) - margin * sin(margin)`` once
    ``theta_y > pi - margin``, keeping the logit decreasing in the angle).

    ``input`` is the BNNeck output: the classification side of the BNNeck, where the
    baseline's own classifier sits (fast-reid's heads take ``neck_feat`` too). The weights
    (``num_classes x feature_dim``, 0 = the run's values, 751 x 2048 outside a run) are
    trained by the method's main optimizer (the baseline's group ``losses``). Defaults:
    scale 64, margin 0.5 rad (the paper's; fast-reid's ``ArcSoftmax`` ships no values
    of its own)."""

    num_classes: int = attrs.field(default=0, validator=_non_negative)
    feature_dim: int = attrs.field(default=0, validator=_non_negative)
    scale: float = attrs.field(default=64.0, validator=_non_negative)
    margin: float = attrs.field(default=0.5, validator=_non_negative)
    label_smoothing: float = attrs.field(default=0.0, validator=_probability)
    input: str = "neck_features"


@attrs.define
class CosFaceConfig:
    """CosFace head (Wang et al., 2018): as ``arcface`` but the true class's logit is
    ``scale * (cos(theta_y) - margin)``. Defaults: scale 64, margin 0.4 (fast-reid's
    ``CosSoftmax`` configuration, FastFace's ``face_base.yml``; the paper uses 0.35)."""

    num_classes: int = attrs.field(default=0, validator=_non_negative)
    feature_dim: int = attrs.field(default=0, validator=_non_negative)
    scale: float = attrs.field(default=64.0, validator=_non_negative)
    margin: float = attrs.field(default=0.4, validator=_non_negative)
    label_smoothing: float = attrs.field(default=0.0, validator=_probability)
    input: str = "neck_features"


@attrs.define
class WeightedTripletConfig:
    """Weighted regularised triplet (AGW, Ye et al., 2021) on ``outputs[input]``: per anchor,
    d_ap = softmax-weighted mean of its positive distances (weights exp(d), the anchor
    itself included as in AGW's code) and d_an = that of its negative distances (weights
    exp(-d)); no margin to tune. ``margin = 0`` (AGW's): mean(softplus(d_ap - d_an));
    ``margin > 0``: mean(relu(d_ap - d_an + margin)), fast-reid's ``TripletLoss`` with
    ``HARD_MINING = False``. Euclidean distances; ``normalize`` L2-normalises first."""

    margin: float = attrs.field(default=0.0, validator=_non_negative)
    normalize: bool = False
    input: str = "features"

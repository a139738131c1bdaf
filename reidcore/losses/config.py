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
    ``soft_margin`` mean(softplus(d_ap - d_an)) and no margin. ``normalize`` L2-normalises
    the features first. Distances are Euclidean, sqrt(max(d^2, 1e-12))."""

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

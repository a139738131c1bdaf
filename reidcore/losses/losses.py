"""The core's losses. Each is an ``nn.Module`` with ``forward(outputs, batch) -> scalar``.

``outputs`` is what a method's network produced (the baseline gives ``"logits"`` B x C,
``"features"`` B x D, the pre-BNNeck vector, and ``"neck_features"``, the BNNeck's output);
``batch["pids"]`` holds the labels.
Which key a loss reads is its ``input`` option.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reidcore.losses.config import (
    ArcFaceConfig,
    CenterConfig,
    CircleConfig,
    CosFaceConfig,
    CrossEntropyConfig,
    TripletConfig,
    WeightedTripletConfig,
)


def _get(outputs: Mapping[str, Any], key: str, loss: str) -> torch.Tensor:
    try:
        return outputs[key]
    except KeyError:
        raise KeyError(f"{loss} loss reads outputs[{key!r}] but the method gave only "
                       f"{sorted(outputs)}; set the loss's 'input' option") from None


def _labels(batch: Mapping[str, Any], device: torch.device) -> torch.Tensor:
    return torch.as_tensor(batch["pids"], device=device).long()


class CrossEntropyLoss(nn.Module):
    def __init__(self, label_smoothing: float = 0.1, input: str = "logits"):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.input = input

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        logits = _get(outputs, self.input, "cross_entropy")
        return F.cross_entropy(logits.float(), _labels(batch, logits.device),
                               label_smoothing=self.label_smoothing)


def pairwise_euclidean(x: torch.Tensor) -> torch.Tensor:
    """sqrt(max(||xi - xj||^2, 1e-12)) for all pairs (finite gradient on the diagonal)."""
    squared = x.pow(2).sum(1)
    d2 = squared[:, None] + squared[None, :] - 2.0 * x @ x.t()
    return d2.clamp(min=1e-12).sqrt()


def batch_hard_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.3,
                       soft_margin: bool = False, normalize: bool = False) -> torch.Tensor:
    """Batch-hard triplet loss averaged over the anchors that have a positive and a negative
    (an anchor's own image counts as its positive when it is its id's only image)."""
    features = features.float()
    if normalize:
        features = F.normalize(features, dim=1)
    dist = pairwise_euclidean(features)
    same = labels[:, None] == labels[None, :]
    hardest_pos = dist.masked_fill(~same, float("-inf")).amax(1)
    hardest_neg = dist.masked_fill(same, float("inf")).amin(1)
    # anchors without a negative (a one-identity batch) are masked, not indexed out: no
    # host-device sync (a GPU step never waits on a bool(...) here); 0 when none is valid
    valid = torch.isfinite(hardest_neg)
    gap = torch.where(valid, hardest_pos - hardest_neg, torch.zeros_like(hardest_pos))
    terms = F.softplus(gap) if soft_margin else F.relu(gap + margin)
    return (terms * valid).sum() / valid.sum().clamp(min=1)


class TripletLoss(nn.Module):
    def __init__(self, margin: float = 0.3, soft_margin: bool = False, normalize: bool = False,
                 input: str = "features"):
        super().__init__()
        self.margin, self.soft_margin, self.normalize, self.input = (
            margin, soft_margin, normalize, input)

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        features = _get(outputs, self.input, "triplet")
        return batch_hard_triplet(features, _labels(batch, features.device), self.margin,
                                  self.soft_margin, self.normalize)


class CenterLoss(nn.Module):
    """mean_i ||f_i - c_{y_i}||^2 with learned centers ``num_classes x feature_dim``."""

    own_optimizer = "center"  # the baseline trains these parameters with their own SGD

    def __init__(self, num_classes: int, feature_dim: int, lr: float = 0.5,
                 input: str = "features"):
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feature_dim))
        self.lr = lr
        self.input = input

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        features = _get(outputs, self.input, "center").float()
        labels = _labels(batch, features.device)
        return (features - self.centers[labels]).pow(2).sum(1).clamp(1e-12, 1e12).mean()


# Stands in for -inf in masked log-sum-exps and softmaxes: a row with nothing left in it
# stays finite (no NaN gradient through an unused row) and exp() of it is exactly 0 beside
# any real entry.
_MASKED = -1e9


def circle_loss(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.25,
                gamma: float = 128.0) -> torch.Tensor:
    """Pairwise circle loss (see :class:`~reidcore.losses.config.CircleConfig`), averaged
    over the anchors that have a positive (other than themselves) and a negative."""
    x = F.normalize(features.float(), dim=1)
    sim = x @ x.t()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=sim.device)
    positive, negative = same & ~eye, ~same
    weight_p = (1.0 + margin - sim.detach()).clamp(min=0.0)
    weight_n = (sim.detach() + margin).clamp(min=0.0)
    logit_p = (-gamma * weight_p * (sim - (1.0 - margin))).masked_fill(~positive, _MASKED)
    logit_n = (gamma * weight_n * (sim - margin)).masked_fill(~negative, _MASKED)
    terms = F.softplus(torch.logsumexp(logit_p, 1) + torch.logsumexp(logit_n, 1))
    valid = positive.any(1) & negative.any(1)
    return (terms * valid).sum() / valid.sum().clamp(min=1)


class CircleLoss(nn.Module):
    def __init__(self, margin: float = 0.25, gamma: float = 128.0, input: str = "features"):
        super().__init__()
        self.margin, self.gamma, self.input = margin, gamma, input

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        features = _get(outputs, self.input, "circle")
        return circle_loss(features, _labels(batch, features.device), self.margin, self.gamma)


def weighted_regularized_triplet(features: torch.Tensor, labels: torch.Tensor,
                                 margin: float = 0.0, normalize: bool = False) -> torch.Tensor:
    """AGW's weighted regularised triplet (see
    :class:`~reidcore.losses.config.WeightedTripletConfig`), averaged over the anchors that
    have a negative."""
    features = features.float()
    if normalize:
        features = F.normalize(features, dim=1)
    dist = pairwise_euclidean(features)
    same = labels[:, None] == labels[None, :]
    weight_p = torch.softmax(dist.masked_fill(~same, _MASKED), 1)
    weight_n = torch.softmax((-dist).masked_fill(same, _MASKED), 1)
    gap = (dist * weight_p).sum(1) - (dist * weight_n).sum(1)
    terms = F.relu(gap + margin) if margin > 0 else F.softplus(gap)
    valid = (~same).any(1)
    return (terms * valid).sum() / valid.sum().clamp(min=1)


class WeightedTripletLoss(nn.Module):
    def __init__(self, margin: float = 0.0, normalize: bool = False, input: str = "features"):
        super().__init__()
        self.margin, self.normalize, self.input = margin, normalize, input

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        features = _get(outputs, self.input, "weighted_triplet")
        return weighted_regularized_triplet(features, _labels(batch, features.device),
                                            self.margin, self.normalize)


class MarginSoftmaxLoss(nn.Module):
    """Cross-entropy on ``scale * cos`` between normalised features and the loss's own
    normalised class weights (``weight``: ``num_classes x feature_dim``), the true class's
    cosine changed by :meth:`target_logit`. Its parameters are trained by the method's
    main optimizer (no ``own_optimizer``)."""

    name = "margin_softmax"

    def __init__(self, num_classes: int, feature_dim: int, scale: float, margin: float,
                 label_smoothing: float = 0.0, input: str = "neck_features"):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, feature_dim))
        nn.init.normal_(self.weight, std=0.01)  # as fast-reid's heads (the scale is lost)
        self.scale, self.margin = scale, margin
        self.label_smoothing, self.input = label_smoothing, input

    def target_logit(self, cosine: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def cosines(self, features: torch.Tensor) -> torch.Tensor:
        """``B x num_classes`` cosine similarities (no margin, no scale)."""
        return F.linear(F.normalize(features.float(), dim=1),
                        F.normalize(self.weight.float(), dim=1))

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        features = _get(outputs, self.input, self.name)
        labels = _labels(batch, features.device)
        cosine = self.cosines(features)
        target = self.target_logit(cosine.gather(1, labels[:, None]))
        logits = cosine.scatter(1, labels[:, None], target) * self.scale
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)


class ArcFaceLoss(MarginSoftmaxLoss):
    name = "arcface"

    def target_logit(self, cosine: torch.Tensor) -> torch.Tensor:
        # clamped inside (-1, 1): acos has an infinite derivative at +-1
        theta = torch.acos(cosine.clamp(-1.0 + 1e-7, 1.0 - 1e-7))
        return torch.where(theta <= math.pi - self.margin, torch.cos(theta + self.margin),
                           cosine - self.margin * math.sin(self.margin))


class CosFaceLoss(MarginSoftmaxLoss):
    name = "cosface"

    def target_logit(self, cosine: torch.Tensor) -> torch.Tensor:
        return cosine - self.margin


class WeightedLoss(nn.Module):
    """The recipe's ``[[losses]]``: ``total = sum(weight_i * loss_i)``; also per-loss values."""

    def __init__(self, names: Sequence[str], losses: Sequence[nn.Module],
                 weights: Sequence[float]):
        super().__init__()
        if not (len(names) == len(losses) == len(weights)):
            raise ValueError("names, losses and weights must have the same length")
        self.names = [self._unique(names, i) for i in range(len(names))]
        self.losses = nn.ModuleList(losses)
        self.weights = [float(w) for w in weights]

    @staticmethod
    def _unique(names: Sequence[str], index: int) -> str:
        name = names[index]
        return name if list(names).count(name) == 1 else f"{name}{index}"

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts = {name: loss(outputs, batch)
                 for name, loss in zip(self.names, self.losses, strict=True)}
        total = sum(w * parts[n] for n, w in zip(self.names, self.weights, strict=True))
        return total, parts


# --- build functions (the registry calls these with the recipe's config) ----------------


def build_cross_entropy(config: CrossEntropyConfig, **_context: Any) -> CrossEntropyLoss:
    return CrossEntropyLoss(config.label_smoothing, config.input)


def build_triplet(config: TripletConfig, **_context: Any) -> TripletLoss:
    return TripletLoss(config.margin, config.soft_margin, config.normalize, config.input)


def build_center(config: CenterConfig, *, num_classes: int | None = None,
                 feature_dim: int | None = None, **_context: Any) -> CenterLoss:
    classes = config.num_classes or num_classes or 751
    dim = config.feature_dim or feature_dim or 2048
    return CenterLoss(classes, dim, config.lr, config.input)


def build_circle(config: CircleConfig, **_context: Any) -> CircleLoss:
    return CircleLoss(config.margin, config.gamma, config.input)


def build_weighted_triplet(config: WeightedTripletConfig, **_context: Any
                           ) -> WeightedTripletLoss:
    return WeightedTripletLoss(config.margin, config.normalize, config.input)


def _margin_softmax(cls: type[MarginSoftmaxLoss], config: ArcFaceConfig | CosFaceConfig,
                    num_classes: int | None, feature_dim: int | None) -> MarginSoftmaxLoss:
    return cls(config.num_classes or num_classes or 751, config.feature_dim or feature_dim or 2048,
               config.scale, config.margin, config.label_smoothing, config.input)


def build_arcface(config: ArcFaceConfig, *, num_classes: int | None = None,
                  feature_dim: int | None = None, **_context: Any) -> MarginSoftmaxLoss:
    return _margin_softmax(ArcFaceLoss, config, num_classes, feature_dim)


def build_cosface(config: CosFaceConfig, *, num_classes: int | None = None,
                  feature_dim: int | None = None, **_context: Any) -> MarginSoftmaxLoss:
    return _margin_softmax(CosFaceLoss, config, num_classes, feature_dim)


# --- contract examples (``ComponentSpec.example``): tiny (outputs, batch) pairs -----------


def _example_batch() -> dict[str, torch.Tensor]:
    return {"pids": torch.tensor([0, 0, 1, 1, 2, 2])}


def example_logits() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=generator).requires_grad_()
    return {"logits": logits}, _example_batch()


def example_features(dim: int = 8) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(6, dim, generator=generator).requires_grad_()
    return {"features": features}, _example_batch()


def example_center() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return example_features(2048)  # the default center loss: 751 classes x 2048 dims


def example_neck_features() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """For the default arcface / cosface heads: 751 classes x 2048 dims."""
    outputs, batch = example_features(2048)
    return {"neck_features": outputs["features"]}, batch

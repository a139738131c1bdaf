"""The core's losses. Each is an ``nn.Module`` with ``forward(outputs, batch) -> scalar``.

``outputs`` is what a method's network produced (the baseline gives ``"logits"`` B x C
and ``"features"`` B x D, the pre-BNNeck vector); ``batch["pids"]`` holds the labels.
Which key a loss reads is its ``input`` option.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reidcore.losses.config import CenterConfig, CrossEntropyConfig, TripletConfig


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

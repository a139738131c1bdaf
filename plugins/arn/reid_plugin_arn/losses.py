"""ARN's losses (method notes B.2) as functions and as registered loss components.

Each component is an ``nn.Module`` with the core's loss contract ``forward(outputs, batch)``
and reads its tensors from ``outputs`` under configurable keys, so any method can use it;
the ``arn`` method calls the functions through the components it builds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from reidcore.api import ReidError
from torch import nn

from reid_plugin_arn.config import (
    ContrastiveConfig,
    DifferenceConfig,
    MMDConfig,
    ReconstructionConfig,
)

# --- functions ----------------------------------------------------------------------------


def reconstruction_l1(reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """sum |x_hat - x| / (B * H * W): the code's normalisation (channels are summed, so a
    constant error of 1 on RGB images gives 3)."""
    if reconstruction.shape != images.shape:
        raise ReidError(f"arn_reconstruction: the reconstruction {tuple(reconstruction.shape)} "
                        f"and the images {tuple(images.shape)} differ in shape")
    batch, _, height, width = images.shape
    return (reconstruction.float() - images.float()).abs().sum() / (batch * height * width)


DIFFERENCE_FORMS = ("dot", "frobenius", "dsn")


def difference(shared: torch.Tensor, private: torch.Tensor, form: str = "dot") -> torch.Tensor:
    """``dot``: sum_i <p_i, c_i> (the code; >= 0 for post-ReLU features); ``frobenius``:
    ||C^T P||_F^2, the squared Frobenius norm of the B x D features' cross-correlation;
    ``dsn``: Domain Separation Networks' released form (where the paper's difference loss
    comes from): each feature centred over the batch and L2-normalised, then the MEAN of
    the squared D x D cross-correlation entries. ``dot`` and ``frobenius`` fall as the
    features shrink, so they can be minimised by driving the shared feature to zero (what
    happens on the synthetic pair); ``dsn`` is scale- and offset-free and at most B^2 / D^2,
    so only decorrelation lowers it (a zero centred row stays zero)."""
    shared, private = shared.flatten(1).float(), private.flatten(1).float()
    if form == "dot":
        return (shared * private).sum()
    if form == "frobenius":
        return (shared.t() @ private).pow(2).sum()
    if form == "dsn":
        unit = [torch.nn.functional.normalize(f - f.mean(0), dim=1, eps=1e-8)
                for f in (shared, private)]
        return (unit[0].t() @ unit[1]).pow(2).mean()
    raise ReidError(f"arn_difference: unknown form '{form}' (expected one of "
                    f"{', '.join(DIFFERENCE_FORMS)})")


def _kernel_mean(a: torch.Tensor, b: torch.Tensor, sigmas: Sequence[float]) -> torch.Tensor:
    d2 = (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)
    return sum(torch.exp(-d2 / (2.0 * s * s)) for s in sigmas).mean()


def mmd(target: torch.Tensor, source: torch.Tensor, sigmas: Sequence[float] = (1.0, 2.0, 10.0),
        root: bool = True) -> torch.Tensor:
    """Biased multi-kernel MMD^2 = mean K_XX + mean K_YY - 2 mean K_XY (X = target, Y =
    source); with ``root`` sqrt(relu(MMD^2)). The squared distances are taken as
    differences (not via ||a||^2 + ||b||^2 - 2ab), so X = Y gives exactly 0, and relu's
    zero gradient at 0 masks sqrt's infinite one: the gradient is 0, not NaN."""
    x, y = target.flatten(1).float(), source.flatten(1).float()
    value = (_kernel_mean(x, x, sigmas) + _kernel_mean(y, y, sigmas)
             - 2.0 * _kernel_mean(x, y, sigmas))
    return value.relu().sqrt() if root else value


def contrastive(features: torch.Tensor, labels: torch.Tensor, margin: float = 2.0,
                squared: bool = False) -> torch.Tensor:
    """Pairs i <= j with d = ||f_i - f_j||^2 / dim: same label adds d, different adds
    relu(margin - d) (squared with ``squared``); the sum times 2 / (B (B - 1))."""
    f = features.flatten(1).float()
    batch, dim = f.shape
    if batch < 2:
        return f.sum() * 0.0
    d = (f[:, None, :] - f[None, :, :]).pow(2).sum(-1) / dim
    same = labels[:, None] == labels[None, :]
    hinge = (margin - d).relu()
    per_pair = torch.where(same, d, hinge.pow(2) if squared else hinge)
    upper = torch.ones(batch, batch, dtype=torch.bool, device=f.device).triu()
    return per_pair[upper].sum() * 2.0 / (batch * (batch - 1))


# --- components ---------------------------------------------------------------------------


def _get(outputs: Mapping[str, Any], key: str, loss: str) -> torch.Tensor:
    if key not in outputs:
        raise ReidError(f"{loss} reads outputs[{key!r}] but got only {sorted(outputs)}; set "
                        f"the loss's key options")
    return outputs[key]


class ReconstructionLoss(nn.Module):
    def __init__(self, config: ReconstructionConfig):
        super().__init__()
        self.config = config

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        c = self.config
        name = "arn_reconstruction"
        images = outputs[c.target] if c.target in outputs else _get(batch, c.target, name)
        return reconstruction_l1(_get(outputs, c.input, name), images)


class DifferenceLoss(nn.Module):
    def __init__(self, config: DifferenceConfig):
        super().__init__()
        self.config = config

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        c = self.config
        return difference(_get(outputs, c.shared, "arn_difference"),
                          _get(outputs, c.private, "arn_difference"), c.form)


class MMDLoss(nn.Module):
    def __init__(self, config: MMDConfig):
        super().__init__()
        self.config = config

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        c = self.config
        return mmd(_get(outputs, c.target, "mmd"), _get(outputs, c.source, "mmd"),
                   c.sigmas, c.root)


class ContrastiveLoss(nn.Module):
    def __init__(self, config: ContrastiveConfig):
        super().__init__()
        self.config = config

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        c = self.config
        features = _get(outputs, c.input, "arn_contrastive")
        labels = torch.as_tensor(_get(batch, "pids", "arn_contrastive"),
                                 device=features.device)
        return contrastive(features, labels, c.margin, c.squared)


def build_reconstruction(config: ReconstructionConfig, **_context: Any) -> ReconstructionLoss:
    return ReconstructionLoss(config)


def build_difference(config: DifferenceConfig, **_context: Any) -> DifferenceLoss:
    return DifferenceLoss(config)


def build_mmd(config: MMDConfig, **_context: Any) -> MMDLoss:
    return MMDLoss(config)


def build_contrastive(config: ContrastiveConfig, **_context: Any) -> ContrastiveLoss:
    return ContrastiveLoss(config)


# --- contract examples: (outputs, batch) --------------------------------------------------


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def reconstruction_example() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return ({"reconstruction": _randn(2, 3, 16, 8).requires_grad_()},
            {"images": _randn(2, 3, 16, 8, seed=1)})


def difference_example() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return ({"shared": _randn(4, 8).relu().requires_grad_(),
             "private": _randn(4, 8, seed=1).relu().requires_grad_()}, {})


def mmd_example() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return ({"source_features": _randn(4, 8).requires_grad_(),
             "target_features": (_randn(4, 8, seed=1) + 1).requires_grad_()}, {})


def contrastive_example() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return {"features": _randn(6, 8).requires_grad_()}, {"pids": torch.tensor([0, 0, 1, 1, 2, 2])}

"""Frechet Inception Distance, as an Evaluator component (``fid``) of the core.

In the core because every method that generates images reports it (CUT-reid, DG-Net).

FID(A, B) = ||mu_A - mu_B||^2 + Tr(S_A + S_B - 2 (S_A S_B)^(1/2)) between Gaussians fitted
to two sets of features, in float64 and without SciPy. From statistics, the trace of the
matrix square root is the sum of the square roots of the eigenvalues of
S_A^(1/2) S_B S_A^(1/2) (symmetric PSD, the same eigenvalues as S_A S_B). From features,
when there are fewer samples than dimensions, it is computed without any D x D matrix:
with S_A = P^T P and S_B = Q^T Q (P, Q the centred features / sqrt(N - 1)), the non-zero
eigenvalues of S_A S_B are those of (P Q^T)(P Q^T)^T, so Tr (S_A S_B)^(1/2) is the sum of
the singular values of P Q^T.

Two uses:

* ``evaluate(query, gallery)``: the distance between two ``FeatureSet``'s features, whatever
  produced them (the contract checks pass random features; a run can pass Inception
  features). No weights are needed.
* ``InceptionFeatures`` / ``FID.features(images)``: Inception-v3 2048-d average-pool
  features of images in [0, 1]. This needs ``weights``: a local torchvision
  ``inception_v3`` state_dict file (nothing is downloaded). The network is torchvision's
  Inception-v3, so values are comparable among themselves but not digit for digit with
  pytorch-fid's TF-ported network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reidcore.errors import ReidError
from reidcore.evaluation.config import FIDConfig


class MissingWeightsError(ReidError):
    """The Inception weights file is not given, missing or unreadable."""


def statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, N - 1) covariance of N x D features, in float64."""
    x = _as_matrix(features)
    return x.mean(0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """The squared Frechet (2-Wasserstein) distance between N(mu1, sigma1), N(mu2, sigma2)."""
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"FID statistics differ in shape: {mu1.shape} vs {mu2.shape}")
    root1 = _sqrt_psd(sigma1)
    inner = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)
    return max(value, 0.0)


def _as_matrix(x: torch.Tensor | np.ndarray) -> np.ndarray:
    a = np.asarray(x.detach().cpu().double() if isinstance(x, torch.Tensor) else x, np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"FID needs N x D features with N >= 2, got shape {a.shape}")
    return a


def frechet_distance_of_features(a: torch.Tensor | np.ndarray,
                                 b: torch.Tensor | np.ndarray) -> float:
    """FID between two N x D feature matrices (the sample route when N is small)."""
    x, y = _as_matrix(a), _as_matrix(b)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"FID features differ in dimension: {x.shape[1]} vs {y.shape[1]}")
    n1, n2, d = x.shape[0], y.shape[0], x.shape[1]
    if n1 * n2 * min(n1, n2) >= d ** 3:
        mu1, s1 = statistics(x)
        mu2, s2 = statistics(y)
        return frechet_distance(mu1, s1, mu2, s2)
    mu1, mu2 = x.mean(0), y.mean(0)
    p = (x - mu1) / np.sqrt(n1 - 1)
    q = (y - mu2) / np.sqrt(n2 - 1)
    trace_sqrt = float(np.linalg.svd(p @ q.T, compute_uv=False).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + (p * p).sum() + (q * q).sum() - 2.0 * trace_sqrt)
    return max(value, 0.0)


def load_inception(weights: str | Path) -> nn.Module:
    """torchvision's Inception-v3 with the state_dict from ``weights``, ``fc`` removed
    (its output is the 2048-d average-pool feature), in eval mode."""
    if not str(weights):
        raise MissingWeightsError(
            "FID needs Inception-v3 weights to compute features from images: set the fid "
            "evaluator's `weights` to a local torchvision inception_v3 state_dict file "
            "(e.g. inception_v3_google-0cc3c7bd.pth); reid never downloads weights")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise MissingWeightsError(f"FID Inception-v3 weights file not found: {path}")
    from torchvision.models import inception_v3

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error
        raise MissingWeightsError(f"cannot read FID Inception-v3 weights {path}: {exc}") from None
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    model = inception_v3(weights=None, aux_logits=True, transform_input=False,
                         init_weights=False)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("AuxLogits.")]
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        raise MissingWeightsError(
            f"{path} is not a torchvision inception_v3 state_dict: missing keys "
            f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected keys "
            f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    model.fc = nn.Identity()
    model.AuxLogits = None
    model.aux_logits = False
    return model.eval()


class FID:
    """The ``fid`` evaluator (see the module docstring)."""

    def __init__(self, config: FIDConfig):
        self.config = config
        self._network: nn.Module | None = None

    @property
    def network(self) -> nn.Module:
        if self._network is None:
            self._network = load_inception(self.config.weights)
        return self._network

    @torch.no_grad()
    def features(self, images: torch.Tensor | Iterable[torch.Tensor],
                 device: torch.device | str = "cpu") -> torch.Tensor:
        """2048-d Inception features of images in [0, 1] (B x 3 x H x W, or an iterable of
        such batches), resized to ``image_size`` and mapped to [-1, 1]."""
        network = self.network.to(device)
        batches = [images] if isinstance(images, torch.Tensor) else images
        out = []
        for batch in batches:
            for chunk in batch.split(self.config.batch_size):
                x = chunk.to(device).float()
                size = self.config.image_size
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
                out.append(network(x * 2.0 - 1.0).float().cpu())
        return torch.cat(out)

    def distance(self, a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
        """FID between two N x D feature matrices."""
        return frechet_distance_of_features(a, b)

    def evaluate(self, query: Any, gallery: Any) -> dict[str, float]:
        """``{"fid": FID(query.features, gallery.features)}`` for two FeatureSets."""
        return {"fid": self.distance(query.features, gallery.features)}

    def image_fid(self, real: torch.Tensor | Iterable[torch.Tensor],
                  fake: torch.Tensor | Iterable[torch.Tensor],
                  device: torch.device | str = "cpu") -> float:
        """FID between two sets of images in [0, 1] (needs ``weights``)."""
        return self.distance(self.features(real, device), self.features(fake, device))


def build_fid(config: FIDConfig, **_context: Any) -> FID:
    return FID(config)

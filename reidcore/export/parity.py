"""Does the exported file embed as PyTorch does? Both embed the same images; the largest
absolute difference and the agreement of the rankings they give are reported."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import torch

TOLERANCE = 1e-4


@attrs.frozen
class Parity:
    """``max_abs_diff`` over every embedding value; ``ranking_agreement``: the share of
    query images whose top-``top_k`` gallery order is the same under both embeddings
    (cosine similarity; the images split in half into queries and gallery)."""

    images: int
    dim: int
    max_abs_diff: float
    ranking_agreement: float
    top_k: int
    source: str

    def passed(self, tolerance: float = TOLERANCE) -> bool:
        return self.max_abs_diff <= tolerance

    def describe(self) -> str:
        return (f"parity on {self.images} images ({self.source}): embeddings {self.dim}-d, "
                f"max abs difference {self.max_abs_diff:.2e}, top-{self.top_k} ranking "
                f"agreement {100 * self.ranking_agreement:.1f}%")


def _top_k(query: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    def unit(rows: np.ndarray) -> np.ndarray:
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    similarity = unit(query) @ unit(gallery).T
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def compare(reference: np.ndarray, exported: np.ndarray, source: str, top_k: int = 5) -> Parity:
    """Parity of two N x D embeddings of the same images (N >= 2)."""
    if reference.shape != exported.shape:
        return Parity(len(reference), int(reference.shape[-1]), float("inf"), 0.0, 0, source)
    half = max(1, len(reference) // 2)
    k = max(1, min(top_k, len(reference) - half))
    same = (_top_k(reference[:half], reference[half:], k)
            == _top_k(exported[:half], exported[half:], k)).all(axis=1)
    return Parity(len(reference), int(reference.shape[1]),
                  float(np.abs(reference - exported).max()), float(same.mean()), k, source)


def images_from_test_set(recipe: Any, registry: Any, count: int) -> tuple[torch.Tensor, str]:
    """Up to ``count`` images of the recipe's first test set, half queries and half gallery,
    transformed as evaluation does: ``(B x 3 x H x W, description)``."""
    from reidcore.data.loaders import open_image
    from reidcore.data.transforms import build_test_transform
    from reidcore.engine.trainer import build_dataset
    from reidcore.errors import ReidError

    if not recipe.data.test:
        raise ReidError("the recipe has no [[data.test]] dataset to take parity images from; "
                        "give the images yourself (parity_images=)")
    section = recipe.data.test[0]
    splits = build_dataset(registry, section).load()
    records: Sequence[Any] = (list(splits.query[:count // 2])
                              + list(splits.gallery[:count - min(count // 2, len(splits.query))]))
    if len(records) < 2:
        raise ReidError(f"test set '{section.name}' has fewer than 2 images for the parity check")
    transform = build_test_transform(recipe.loader)
    images = torch.stack([transform(open_image(record.path)) for record in records])
    return images, f"test set '{section.name}'"

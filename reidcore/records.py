"""Plain records passed between datasets, samplers, the engine and evaluators.

They hold no tensors at import time so that importing the core stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import numpy as np
    import torch


@attrs.frozen
class ImageRecord:
    """One image of a dataset.

    ``camid`` is ``None`` for datasets without camera ids; evaluation then uses the
    explicit "no camera" protocol instead of dropping every same-camera match.
    ``extras`` carries per-image targets (e.g. SAN's texture map path).
    """

    path: str
    pid: int
    camid: int | None = None
    domain: str = ""
    extras: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class DatasetSplits:
    """The three splits of a re-ID dataset; an unlabeled or train-only set leaves some empty."""

    train: tuple[ImageRecord, ...] = ()
    query: tuple[ImageRecord, ...] = ()
    gallery: tuple[ImageRecord, ...] = ()


@attrs.frozen
class SplitStats:
    """Counts a dataset declares so a local copy can be checked against them."""

    train_ids: int
    train_images: int
    query_images: int
    gallery_images: int
    test_ids: int | None = None


@attrs.frozen
class FeatureSet:
    """Embeddings of a split with the labels evaluation needs.

    ``camids`` is ``None`` when the dataset has no camera ids.
    """

    features: torch.Tensor
    pids: np.ndarray
    camids: np.ndarray | None = None
    paths: tuple[str, ...] = ()

    def block(self, start: int, stop: int) -> FeatureSet:
        """Items ``start:stop`` (a gallery shard)."""
        return FeatureSet(self.features[start:stop], self.pids[start:stop],
                          None if self.camids is None else self.camids[start:stop],
                          tuple(self.paths[start:stop]))


@attrs.frozen
class RunInfo:
    """What lifecycle observers get about a run: its directory and resolved recipe."""

    run_dir: str
    recipe: Any
    resumed: bool = False

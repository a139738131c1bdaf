"""The contracts components fulfil, as Protocols.

Implementations subclass ``torch.nn.Module`` (or nothing), never these classes: a
Protocol is checked by shape, so a third-party component needs no import from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from reidcore.records import DatasetSplits, FeatureSet, SplitStats


@runtime_checkable
class Dataset(Protocol):
    """Indexes the files of one dataset; never transforms, downloads or relabels."""

    expected: SplitStats | None

    def load(self) -> DatasetSplits: ...


@runtime_checkable
class Backbone(Protocol):
    """A feature extractor: maps for methods that need them, vectors for retrieval."""

    feature_dim: int

    def forward_features(self, images: torch.Tensor) -> torch.Tensor: ...  # B x C x H x W

    def forward(self, images: torch.Tensor) -> torch.Tensor: ...  # B x D


@runtime_checkable
class Generator(Protocol):
    """An image-to-image or codes-to-image network (discriminators share the kind)."""

    def forward(self, *inputs: torch.Tensor) -> Any: ...


@runtime_checkable
class Loss(Protocol):
    """A training objective; its weight lives in the recipe, not in the loss."""

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor: ...


@runtime_checkable
class Evaluator(Protocol):
    """Scores query embeddings against gallery embeddings."""

    def evaluate(self, query: FeatureSet, gallery: FeatureSet) -> Mapping[str, float]: ...


@runtime_checkable
class Method(Protocol):
    """A trainable composition of components that owns its networks, optimizers and step.

    ``training_step`` does its own backward passes and optimizer steps (several
    optimizers and alternating generator/discriminator updates are natural), and returns
    scalar metrics for logging. ``embed`` gives the retrieval embedding.
    """

    def modules(self) -> Mapping[str, torch.nn.Module]: ...

    def configure_optimizers(self) -> Any: ...

    def training_step(self, batch: Mapping[str, Any], step: int) -> Mapping[str, float]: ...

    def embed(self, images: torch.Tensor) -> torch.Tensor: ...

"""The contracts components fulfil, as Protocols, and the training batch's layout.

Implementations subclass ``torch.nn.Module`` (or nothing), never these classes: a
Protocol is checked by shape, so a third-party component needs no import from here.
``reidcore.testing.check_component`` runs each contract on a component (the registry-wide
contract test runs it on every installed one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, runtime_checkable

if TYPE_CHECKING:
    import torch

    from reidcore.engine.optim import Optimization
    from reidcore.engine.step import StepOptimizers
    from reidcore.records import DatasetSplits, FeatureSet, SplitStats


class TargetBatch(TypedDict, total=False):
    """``batch["target"]``: the unlabelled target-domain images of the step (no pids:
    target labels never reach a loss)."""

    images: torch.Tensor  # B_t x 3 x H x W
    camids: torch.Tensor
    domains: torch.Tensor  # index in [[data.target]]
    indices: torch.Tensor
    paths: list[str]
    extras: list[dict[str, Any]]


class Batch(TypedDict, total=False):
    """A training batch as ``training_step`` receives it (built by
    :mod:`reidcore.data.loaders`). The optional parts are there when the recipe asks for
    them; a method declares those it reads in its spec (``MethodNeeds.batch``)."""

    images: torch.Tensor  # B x 3 x H x W, augmented and normalised
    pids: torch.Tensor  # int64 B, relabelled 0..num_classes-1 over all sources
    camids: torch.Tensor  # int64 B, -1 where the dataset has none
    domains: torch.Tensor  # int64 B, index of the source dataset
    indices: torch.Tensor  # int64 B, index of the image in the training records
    paths: list[str]
    extras: list[dict[str, Any]]
    positives: torch.Tensor  # loader.positive: another image of the same identity
    textures: torch.Tensor  # loader.textures: B x 3 x th x tw in [-1, 1]
    second: Batch  # loader.second_batch: an independent batch of the same size
    target: TargetBatch  # [[data.target]]: the unlabelled target batch


@runtime_checkable
class Dataset(Protocol):
    """Indexes the files of one dataset; never transforms, downloads or relabels.

    ``load()`` returns the ``train``/``query``/``gallery`` records; ``expected`` the
    published counts that ``reid data check`` compares a local copy with (or None).
    Contract check: the built object has both."""

    expected: SplitStats | None

    def load(self) -> DatasetSplits: ...


@runtime_checkable
class Backbone(Protocol):
    """A feature extractor: maps for methods that need them, vectors for retrieval.

    ``forward_features(images)`` gives ``B x C x H x W`` maps, ``forward(images)`` the
    pooled ``B x feature_dim`` vectors. The spec's ``example()`` (optional) returns the
    images to check with (default ``2 x 3 x 64 x 32``); the contract check runs forward and
    backward and asks that a gradient reaches every parameter."""

    feature_dim: int

    def forward_features(self, images: torch.Tensor) -> torch.Tensor: ...  # B x C x H x W

    def forward(self, images: torch.Tensor) -> torch.Tensor: ...  # B x D


@runtime_checkable
class Generator(Protocol):
    """An image-to-image or codes-to-image network (discriminators share the kind).

    The spec's ``example()`` returns the positional arguments of one forward call (a
    tensor or a tuple of tensors); the contract check runs forward and backward on them
    and asks that a gradient reaches every parameter."""

    def forward(self, *inputs: torch.Tensor) -> Any: ...


@runtime_checkable
class Loss(Protocol):
    """A training objective; its weight lives in the recipe (``[[losses]] weight``).

    ``forward(outputs, batch)`` returns a scalar tensor. What it receives from the
    baseline (and methods that follow its convention): ``outputs["features"]`` (``B x D``
    embeddings before the BNNeck: metric losses), ``outputs["neck_features"]`` and
    ``outputs["logits"]`` (``B x num_classes``: classification losses); ``batch["pids"]``
    (int64 ``B``). A method documents any other key it passes. The build function may take
    ``num_classes`` and ``feature_dim`` keywords. The spec's ``example()`` returns
    ``(outputs, batch)``; the contract check asks for a finite scalar and a gradient."""

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor: ...


@runtime_checkable
class Evaluator(Protocol):
    """Scores query embeddings against gallery embeddings: ``evaluate(query, gallery)``
    returns finite metrics by name (``mAP``, ``rank1``, ... as fractions). The spec's
    ``example()`` (optional) returns a ``(query, gallery)`` pair of ``FeatureSet``."""

    def evaluate(self, query: FeatureSet, gallery: FeatureSet) -> Mapping[str, float]: ...


@runtime_checkable
class ShardsGallery(Protocol):
    """An evaluator that can rank against a gallery sharded over DDP ranks (the builtin
    ``ranking``): under DDP each rank keeps its own block of the gallery's embeddings and
    receives all the queries', so no rank ever holds the whole gallery.
    ``shard_refusal()`` says why the present configuration cannot shard (None: it can);
    ``evaluate_shard(query, gallery_shard, group)`` is then called on every rank, blocks in
    rank order, and returns the metrics ``evaluate`` would give on the whole gallery.
    Evaluators without it get the whole gallery gathered on rank 0."""

    def shard_refusal(self) -> str | None: ...

    def evaluate_shard(self, query: FeatureSet, gallery_shard: FeatureSet,
                       group: Any = None) -> Mapping[str, float]: ...


@runtime_checkable
class Method(Protocol):
    """A trainable composition of components that owns its networks and step.

    ``modules()`` names every network (what checkpoints save). ``configure_optimizers()``
    returns an :class:`~reidcore.engine.optim.Optimization` (named optimizers built with
    ``context.make_optimizer``, and their schedulers); the engine keeps it, checkpoints it
    and steps every scheduler after each training step. ``training_step(batch, step,
    optim)`` gets the batch (:class:`Batch`), the number of steps done, and the
    :class:`~reidcore.engine.step.StepOptimizers` that updates a network in one call
    (``optim.update("main", loss)``); it returns its metrics as 0-d tensors (or floats),
    which the engine sums on the device and reads every ``log_every`` steps. ``embed``
    gives the retrieval embedding (called in eval mode under ``torch.no_grad``).

    The spec's ``example()`` returns a small recipe for the method; the contract check
    builds it on the CPU, runs ``configure_optimizers`` and one ``training_step`` on a
    batch the recipe's loader would give, and asks that every parameter of every
    optimizer received a gradient (a method lists those that legitimately get none on
    that step, with the reason, under the example's ``"reid:no_gradient"``).
    """

    def modules(self) -> Mapping[str, torch.nn.Module]: ...

    def configure_optimizers(self) -> Optimization: ...

    def training_step(self, batch: Batch, step: int,
                      optim: StepOptimizers) -> Mapping[str, torch.Tensor | float]: ...

    def embed(self, images: torch.Tensor) -> torch.Tensor: ...


# --- what a method's mechanism can show (the proving ground) ------------------------------
# A method opts in by having the method; after evaluation on the built-in synthetic data,
# whose generator knows the truth behind every image, the core measures it against that
# truth beside trivial baselines (:mod:`reidcore.engine.mechanism`). Inputs are what the
# run's test transform yields (normalised tensors), in eval mode under ``torch.no_grad``.


@runtime_checkable
class SwapsAppearance(Protocol):
    """``swap(appearance, structure)``: B x 3 x H x W images with the identity (clothing,
    body) of ``appearance[i]`` in the scene (pose, background, camera) of ``structure[i]``,
    in the inputs' normalised space (DG-Net: decode(Ea(a), Es(s)))."""

    def swap(self, appearance: torch.Tensor, structure: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class TranslatesStyle(Protocol):
    """``translate(images)``: source-style images rendered in the target style, same shape,
    in the inputs' normalised space (CUT-reid: its translator)."""

    def translate(self, images: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class EstimatesTexture(Protocol):
    """``estimate_texture(images)``: B x 3 x Ht x Wt UV texture maps (RGB in [0, 1]) of the
    people shown (SAN's texture decoder); any Ht x Wt (the truth is resized to it)."""

    def estimate_texture(self, images: torch.Tensor) -> torch.Tensor: ...

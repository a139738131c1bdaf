"""The ``[evaluate]`` options of the builtin ``ranking`` evaluator (no torch, no numba).

Example::

    [evaluate]
    name = "ranking"
    metric = "cosine"
    normalisation = "l2"
    flip = true
    rerank = false
    ranks = [1, 5, 10]
    protocol = "auto"
"""

from __future__ import annotations

from typing import Literal

import attrs


def shard_refusal(config: RankingConfig) -> str | None:
    """Why ``config`` needs the whole gallery in one process, or None when its evaluation
    can be sharded (:mod:`reidcore.evaluation.sharded`)."""
    for wanted, what in ((config.rerank, "re-ranking (--rerank, evaluate.rerank)"),
                         (config.query_expansion, "query expansion (evaluate.query_expansion)"),
                         (config.protocol == "single-gallery-shot",
                          "the single-gallery-shot protocol (evaluate.protocol)")):
        if wanted:
            return f"{what} needs the whole gallery in one process and is not sharded"
    return None


def _shardable(instance, attribute, value) -> None:
    refusal = shard_refusal(instance) if value == "on" else None
    if refusal:
        raise ValueError(f"'{attribute.name} = \"on\"' cannot be honoured: {refusal} "
                         "(use \"auto\", which gathers it on rank 0)")


def _positive_ranks(_instance, attribute, value) -> None:
    if not value or any(int(r) < 1 for r in value):
        raise ValueError(f"'{attribute.name}' must be a non-empty list of ranks >= 1, "
                         f"got {list(value)!r}")


@attrs.define
class RankingConfig:
    """Options of the ranking evaluator (CMC, mAP, mINP; optional re-ranking).

    * ``metric``: distance between embeddings: ``euclidean``, ``sqeuclidean``, ``cosine``,
      ``l1`` (cityblock).
    * ``normalisation``: ``l2`` normalises embeddings before anything else; ``none`` not.
    * ``flip``: test-time augmentation, read by the engine (not by the evaluator): when
      true the engine embeds each test image and its horizontal flip and averages the two
      embeddings before calling ``evaluate``.
    * ``query_expansion``: average query expansion: each query embedding is replaced by
      the mean of itself and its ``query_expansion`` nearest gallery embeddings (0: off).
    * ``rerank``: k-reciprocal re-ranking with ``k1``, ``k2``, ``lambda_value``
      (streamed from distance blocks: about ``N * (8 * D + 4,500)`` bytes for ``N`` images
      of ``D``-d float32 features at the default k1, k2, plus the blocks; never ``N x N``).
    * ``ranks``: the CMC ranks reported (``rank1``, ``rank5``...); ``max_rank``: the
      length of the CMC curve kept in the result (at least ``max(ranks)``).
    * ``protocol``: ``auto`` (``market`` when camera ids are known, else ``no-camera``),
      ``market``, ``single-gallery-shot`` (CUHK03 classic; ``sgs_repeats`` draws seeded by
      ``seed``) or ``no-camera``.
    * ``average_precision``: ``standard`` (non-interpolated, as torchreid and fast-reid) or
      ``interpolated`` (the official Market-1501 evaluation code).
    * ``chunk_rows``: query rows per distance chunk (0: about 256 MB per chunk).
    * ``memory_gb``: the working memory evaluation may use beyond the features, in GB
      (0: half the machine's memory). Block sizes are chosen to fit; a request that cannot
      fit (a large re-ranking, too many ``chunk_rows``) is an error naming the memory it
      needs, before anything large is allocated.
    * ``verification``: TPR at FPR = 1e-4, 1e-3, 1e-2 (``tpr_at_fpr_1e-4``...) from the
      same pass (same-identity pairs accepted at a rate of different-identity pairs
      accepted; see :mod:`reidcore.evaluation.verification` for how fast-reid's figure
      differs).
    * ``shard_gallery``: in a DDP training run, ``auto`` (the default) lets each rank keep
      its own contiguous block of the gallery's embeddings and rank against it, with all
      the queries (exact: every metric equals the one-process evaluation bit for bit; see
      :mod:`reidcore.evaluation.sharded`), unless re-ranking, query expansion or the
      single-gallery-shot protocol needs the whole gallery, when rank 0 gathers it;
      ``on`` demands sharding (refused with those options); ``off`` always gathers the
      features on rank 0 (as fast-reid does). One process: no effect. The final
      evaluation's ranked-results picture (``train.ranked_pictures``) still gathers the
      gallery on rank 0, once.
    * ``bootstrap``: resamples of the queries for the ``confidence`` intervals of mAP,
      mINP and each rank (``mAP_ci_low``/``mAP_ci_high``...; seeded by ``seed``; 0: none).
    """

    metric: Literal["euclidean", "sqeuclidean", "cosine", "l1"] = "euclidean"
    normalisation: Literal["none", "l2"] = "none"
    flip: bool = False
    query_expansion: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    rerank: bool = False
    k1: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    k2: int = attrs.field(default=6, validator=attrs.validators.ge(1))
    lambda_value: float = attrs.field(default=0.3, validator=[attrs.validators.ge(0.0),
                                                              attrs.validators.le(1.0)])
    ranks: tuple[int, ...] = attrs.field(default=(1, 5, 10), converter=tuple,
                                         validator=_positive_ranks)
    max_rank: int = attrs.field(default=50, validator=attrs.validators.ge(1))
    protocol: Literal["auto", "market", "single-gallery-shot", "no-camera"] = "auto"
    average_precision: Literal["standard", "interpolated"] = "standard"
    sgs_repeats: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    seed: int = 0
    chunk_rows: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    memory_gb: float = attrs.field(default=0.0, converter=float,
                                   validator=attrs.validators.ge(0.0))
    verification: bool = True
    shard_gallery: Literal["auto", "on", "off"] = attrs.field(default="auto",
                                                           validator=_shardable)
    bootstrap: int = attrs.field(default=1000, validator=attrs.validators.ge(0))
    confidence: float = attrs.field(default=0.95, validator=[attrs.validators.gt(0.0),
                                                             attrs.validators.lt(1.0)])


@attrs.define
class FIDConfig:
    """Frechet Inception Distance (``fid``).

    ``evaluate(query, gallery)`` returns the Frechet distance between the two feature
    sets' Gaussians (``fid``). To get Inception features from images (``Inception``),
    ``weights`` must name a local torchvision ``inception_v3`` state_dict file (e.g. the
    ``IMAGENET1K_V1`` weights); nothing is ever downloaded. It is needed only then, so the
    component builds without it. Images are resized to ``image_size`` (bilinear) and the
    2048-d average-pool features are used.
    """

    weights: str = ""
    image_size: int = attrs.field(default=299, validator=attrs.validators.ge(75))
    batch_size: int = attrs.field(default=50, validator=attrs.validators.ge(1))

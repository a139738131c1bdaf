"""The builtin ``ranking`` evaluator and evaluation from features.

:func:`evaluate_features` streams chunks of query rows through the distance computation
(torch, on the features' device) and the ranking kernels, so the full query x gallery
matrix never exists: an MSMT17-sized problem needs little more memory than its features.
Re-ranking streams too (:func:`~reidcore.evaluation.rerank.iter_reranked_chunks`): no
``N x N`` or query x gallery matrix exists; block sizes follow ``evaluate.memory_gb``.

Flip test-time augmentation happens before this module: the engine reads
``RankingConfig.flip`` and averages the embeddings of each image and its mirror image.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from reidcore.errors import ReidError
from reidcore.evaluation.bootstrap import with_intervals
from reidcore.evaluation.config import RankingConfig, shard_refusal
from reidcore.evaluation.distance import (
    as_array,
    as_tensor,
    check_finite,
    check_metric,
    iter_distance_chunks,
    l2_normalise,
    l2_normalise_array,
    numpy_backend_fits,
)
from reidcore.evaluation.memory import (
    Budget,
    budget_bytes,
    default_memory_bytes,
    out_of_memory,
    plain_rows,
)
from reidcore.evaluation.protocol import (
    camera_ids_warning,
    query_gallery_index_from_paths,
    resolve_protocol,
)
from reidcore.evaluation.ranking import (
    GalleryIndex,
    RankResult,
    combine,
    prepare_labels,
    rank_chunk,
)
from reidcore.evaluation.sharded import shard_positives
from reidcore.evaluation.verification import VerificationPass, negative_pairs
from reidcore.fileio import atomic_write_text
from reidcore.progress import progress
from reidcore.records import FeatureSet

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("reid.evaluation")


def average_query_expansion(query, gallery, k: int, *, metric: str = "euclidean",
                            normalise: bool = False, rows: int | None = None) -> torch.Tensor:
    """Average query expansion: each query becomes the mean of itself and its ``k``
    nearest gallery embeddings (re-normalised when ``normalise``)."""
    import torch

    query = as_tensor(query)
    gallery = as_tensor(gallery)
    if k <= 0:
        return query
    k = min(k, gallery.shape[0])
    expanded = torch.empty_like(query)
    with torch.no_grad():
        for start, block in iter_distance_chunks(query, gallery, metric, rows=rows):
            nearest = torch.from_numpy(block).topk(k, dim=1, largest=False).indices
            neighbours = gallery[nearest.to(gallery.device)]  # rows x k x D
            stop = start + block.shape[0]
            expanded[start:stop] = (query[start:stop] + neighbours.sum(dim=1)) / (k + 1)
    return l2_normalise(expanded) if normalise else expanded


def evaluate_features(query_features, gallery_features, q_pids, g_pids, q_camids=None,
                      g_camids=None, *, metric: str = "euclidean",
                      normalisation: str = "none", query_expansion: int = 0,
                      rerank: bool = False, k1: int = 20, k2: int = 6,
                      lambda_value: float = 0.3, protocol: str = "auto",
                      max_rank: int = 50, average_precision: str = "standard",
                      sgs_repeats: int = 10, seed: int = 0, rows: int | None = None,
                      query_gallery_index=None, memory_bytes: int | None = None,
                      verification: bool = True, bootstrap: int = 1000,
                      confidence: float = 0.95, ci_ranks: Sequence[int] = (1, 5, 10),
                      backend: str = "torch") -> RankResult:
    """Rank metrics from embeddings (see :class:`~reidcore.evaluation.config.RankingConfig`
    for the options). The distance matrix is streamed by query chunks, re-ranked or not;
    working memory stays within ``memory_bytes`` (default: half the machine's memory) and
    a request that cannot fit is a :class:`ReidError` naming the memory it needs, raised
    before the allocation. An empty query or gallery, or a feature row holding NaN or inf,
    is a :class:`ReidError`; the result records the protocol and the distance it used.

    ``verification`` adds TPR@FPR = 1e-4, 1e-3, 1e-2 from the same pass
    (:mod:`~reidcore.evaluation.verification`); ``bootstrap`` resamples (0: none) give
    ``confidence`` intervals over queries for mAP, mINP and rank-k for ``ci_ranks``
    (:mod:`~reidcore.evaluation.bootstrap`, seeded by ``seed``). ``backend="numpy"``
    computes plain distances of NumPy features with NumPy (no torch import: ``reid eval``
    of saved features), equal to torch's within float32 rounding; re-ranking, query
    expansion and ``l1`` use torch.
    """
    try:
        result = _evaluate_features(
            query_features, gallery_features, q_pids, g_pids, q_camids, g_camids,
            metric=metric, normalisation=normalisation, query_expansion=query_expansion,
            rerank=rerank, k1=k1, k2=k2, lambda_value=lambda_value, protocol=protocol,
            max_rank=max_rank, average_precision=average_precision, sgs_repeats=sgs_repeats,
            seed=seed, rows=rows, query_gallery_index=query_gallery_index,
            memory_bytes=memory_bytes, verification=verification, backend=backend)
        if bootstrap:
            result = with_intervals(result, resamples=bootstrap, confidence=confidence,
                                    seed=seed, ranks=ci_ranks)
    except MemoryError as exc:
        raise out_of_memory(exc, "evaluation") from None
    except RuntimeError as exc:  # torch's allocator
        if "alloc" in str(exc).lower() or "out of memory" in str(exc).lower():
            raise out_of_memory(exc, "evaluation") from None
        raise
    return attrs.evolve(result, distance=metric, normalisation=normalisation,
                        reranked=bool(rerank))


def _evaluate_features(query_features, gallery_features, q_pids, g_pids, q_camids,
                       g_camids, *, metric: str, normalisation: str, query_expansion: int,
                       rerank: bool, k1: int, k2: int, lambda_value: float, protocol: str,
                       max_rank: int, average_precision: str, sgs_repeats: int, seed: int,
                       rows: int | None, query_gallery_index,
                       memory_bytes: int | None, verification: bool,
                       backend: str = "torch") -> RankResult:
    check_metric(metric)
    if normalisation not in ("none", "l2"):
        raise ReidError(f"normalisation must be 'none' or 'l2', got '{normalisation}'")
    use_numpy = (backend == "numpy" and not rerank and query_expansion == 0
                 and numpy_backend_fits(query_features, gallery_features, metric))
    query: Any
    gallery: Any
    if use_numpy:
        query, gallery = as_array(query_features), as_array(gallery_features)
    else:
        query, gallery = as_tensor(query_features), as_tensor(gallery_features)
    for side, features in (("query", query), ("gallery", gallery)):
        if features.shape[0] == 0:
            raise ReidError(f"nothing to evaluate: the {side} set is empty (0 features); "
                            "evaluation needs at least one query and one gallery image")
    if query.shape[1] != gallery.shape[1]:
        raise ReidError(f"query and gallery features differ in dimension: "
                        f"{query.shape[1]} vs {gallery.shape[1]}")
    check_finite(query, "the query features")
    check_finite(gallery, "the gallery features")
    if normalisation == "l2":
        query, gallery = ((l2_normalise_array(query), l2_normalise_array(gallery))
                          if use_numpy else (l2_normalise(query), l2_normalise(gallery)))
    protocol = resolve_protocol(protocol, q_camids is not None and g_camids is not None)
    num_q, num_g = query.shape[0], gallery.shape[0]
    q_pids, g_pids, q_camids, g_camids = prepare_labels(
        q_pids, g_pids, q_camids, g_camids, num_q, num_g, protocol)
    if query_expansion > 0:
        query = average_query_expansion(query, gallery, query_expansion, metric=metric,
                                        normalise=normalisation == "l2", rows=rows)
    if query_gallery_index is not None:
        query_gallery_index = np.asarray(query_gallery_index, np.int64)
    index = GalleryIndex.build(g_pids, g_camids)
    memory_bytes = memory_bytes or default_memory_bytes()
    verify = None
    if verification:
        num_negatives = negative_pairs(g_pids, q_pids)
        need = VerificationPass.buffer_bytes(num_negatives)
        Budget(memory_bytes, "TPR@FPR (evaluate.verification = false skips it)").check(
            need, f"the smallest distances of {num_negatives:,} negative pairs")
        memory_bytes -= need
        verify = VerificationPass(num_negatives)
    if rerank:  # the re-ranking shows its own bar
        from reidcore.evaluation.rerank import iter_reranked_chunks

        chunks = iter_reranked_chunks(query, gallery, metric, k1=k1, k2=k2,
                                      lambda_value=lambda_value, memory_bytes=memory_bytes,
                                      rows=rows)
    else:
        rows = plain_rows(num_q, num_g, memory_bytes, rows)
        chunks = progress(iter_distance_chunks(query, gallery, metric, rows=rows,
                                               backend="numpy" if use_numpy else "torch"),
                          total=-(-num_q // rows), desc="ranking", unit="chunk")
    parts = []
    for start, block in chunks:
        stop = start + block.shape[0]
        parts.append(rank_chunk(
            block, q_pids[start:stop], None if q_camids is None else q_camids[start:stop],
            index, protocol=protocol, query_offset=start,
            query_gallery_index=None if query_gallery_index is None
            else query_gallery_index[start:stop],
            max_rank=max_rank, sgs_repeats=sgs_repeats, seed=seed))
        if verify is not None:
            _, positives, _ = shard_positives(
                block, q_pids[start:stop], None if q_camids is None else q_camids[start:stop],
                index, offset=0, protocol=protocol,
                query_gallery_index=None if query_gallery_index is None
                else query_gallery_index[start:stop])
            verify.add(block, q_pids[start:stop], index.pids, positives)
        del block
    result = combine(parts, max_rank=max_rank, protocol=protocol,
                     average_precision=average_precision)
    if verify is not None:
        result = attrs.evolve(result, tpr_at_fpr=verify.result())
    return result


class RankingEvaluator:
    """The builtin evaluator: ``evaluate(query, gallery)`` returns flat metrics.

    Keys: ``mAP``, ``mINP``, ``rank<k>`` for each configured rank, ``num_valid_queries``
    and ``num_skipped_queries``. The full :class:`RankResult` of the last call is kept in
    ``last_result`` for reports (:meth:`write_report`) and pictures
    (:meth:`ranked_results`).
    """

    def __init__(self, config: RankingConfig):
        self.config = config
        self.last_result: RankResult | None = None

    def describe(self, query_has_camids: bool = True,
                 gallery_has_camids: bool = True) -> dict[str, object]:
        """How a test set with (or without) camera ids is scored: the protocol, the
        distance and the options that change the figures (recorded in ``summary.json``
        and printed with every ``reid eval`` result)."""
        cfg = self.config
        return {"evaluator": "ranking",
                "protocol": resolve_protocol(cfg.protocol,
                                             query_has_camids and gallery_has_camids),
                "distance": cfg.metric, "normalisation": cfg.normalisation,
                "flip": cfg.flip, "rerank": cfg.rerank,
                "query_expansion": cfg.query_expansion,
                "average_precision": cfg.average_precision}

    def evaluate(self, query: FeatureSet, gallery: FeatureSet) -> Mapping[str, float]:
        cfg = self.config
        have_cams = query.camids is not None and gallery.camids is not None
        warning = camera_ids_warning(query.camids is not None, gallery.camids is not None,
                                     cfg.protocol)
        if warning:
            logger.warning(warning)
        protocol = resolve_protocol(cfg.protocol, have_cams)
        self_index = None
        if protocol == "no-camera":
            self_index = query_gallery_index_from_paths(query.paths, gallery.paths)
        max_rank = max(cfg.max_rank, *cfg.ranks)
        result = evaluate_features(
            query.features, gallery.features, query.pids, gallery.pids,
            query.camids if have_cams else None, gallery.camids if have_cams else None,
            metric=cfg.metric, normalisation=cfg.normalisation,
            query_expansion=cfg.query_expansion, rerank=cfg.rerank, k1=cfg.k1, k2=cfg.k2,
            lambda_value=cfg.lambda_value, protocol=protocol, max_rank=max_rank,
            average_precision=cfg.average_precision, sgs_repeats=cfg.sgs_repeats,
            seed=cfg.seed, rows=cfg.chunk_rows or None, query_gallery_index=self_index,
            memory_bytes=budget_bytes(cfg.memory_gb), verification=cfg.verification,
            bootstrap=cfg.bootstrap, confidence=cfg.confidence, ci_ranks=cfg.ranks,
            backend="numpy")  # only for NumPy features (reid eval's): tensors use torch
        self.last_result = result
        return result.summary(cfg.ranks)

    def shard_refusal(self) -> str | None:
        """Why this configuration needs the whole gallery in one process (re-ranking, query
        expansion, single-gallery-shot), or None: then :meth:`evaluate_shard` applies."""
        return shard_refusal(self.config)

    def evaluate_shard(self, query: FeatureSet, gallery_shard: FeatureSet,
                       group: Any = None) -> Mapping[str, float]:
        """:meth:`evaluate` with the gallery sharded over the processes of ``group``
        (``torch.distributed``; every process calls it with all the queries and its own
        contiguous block of the gallery, blocks in rank order). Every process gets the
        metrics of the one-process evaluation of the whole gallery, bit for bit."""
        from reidcore.evaluation.sharded import evaluate_shard_sets

        warning = camera_ids_warning(query.camids is not None,
                                     gallery_shard.camids is not None, self.config.protocol)
        if warning:
            logger.warning(warning)
        result = evaluate_shard_sets(self.config, query, gallery_shard, group)
        self.last_result = result
        return result.summary(self.config.ranks)

    def write_report(self, directory: str | Path, name: str = "eval",
                     query_paths: Sequence[str] | None = None) -> dict[str, Path]:
        """Write ``<name>_metrics.json`` and ``<name>_per_query.npz`` for the last call."""
        if self.last_result is None:
            raise RuntimeError("write_report needs a call to evaluate first")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        metrics = directory / f"{name}_metrics.json"
        data = self.last_result.to_dict()
        data.update(self.last_result.summary(self.config.ranks))
        atomic_write_text(metrics, json.dumps(data, indent=2) + "\n")
        per_query = self.write_per_query(directory / f"{name}_per_query.npz", query_paths)
        return {"metrics": metrics, "per_query": per_query}

    def write_per_query(self, path: str | Path,
                        query_paths: Sequence[str] | None = None) -> Path:
        """The last call's per-query AP, first-match rank and INP (``.npz``, ``.csv`` or
        ``.json`` by the suffix; see :meth:`RankResult.write_per_query`)."""
        if self.last_result is None:
            raise RuntimeError("write_per_query needs a call to evaluate first")
        return self.last_result.write_per_query(path, query_paths or None)

    def ranked_results(self, query: FeatureSet, gallery: FeatureSet, path: str | Path, *,
                       topk: int = 10, num_queries: int = 8, seed: int = 0):
        """Save the ranked-results picture (PNG) for sampled queries; returns the path and
        the image as an ``H x W x 3`` uint8 array (for TensorBoard's ``add_image``)."""
        from reidcore.evaluation.visualize import save_ranked_results

        cfg = self.config
        return save_ranked_results(
            path, query, gallery, metric=cfg.metric, normalisation=cfg.normalisation,
            protocol=cfg.protocol, topk=topk, num_queries=num_queries, seed=seed)


def build_ranking_evaluator(config: RankingConfig) -> RankingEvaluator:
    return RankingEvaluator(config)

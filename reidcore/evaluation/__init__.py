"""Evaluation: distances, numba ranking metrics, k-reciprocal re-ranking, reports.

Public API (names are stable)::

    from reidcore.evaluation import rank_metrics, k_reciprocal_rerank
    result = rank_metrics(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50,
                          protocol="market")
    result.cmc, result.mAP, result.mINP, result.num_valid_queries, result.ap, ...

Names are imported lazily on first access, so ``import reidcore.evaluation.components``
(done when plugins are listed) imports neither torch nor numba. The semantics of the
protocols are documented in :mod:`reidcore.evaluation.ranking`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "rank_metrics": "reidcore.evaluation.ranking",
    "RankResult": "reidcore.evaluation.ranking",
    "PROTOCOLS": "reidcore.evaluation.ranking",
    "k_reciprocal_rerank": "reidcore.evaluation.rerank",
    "pairwise_distance": "reidcore.evaluation.distance",
    "iter_distance_chunks": "reidcore.evaluation.distance",
    "evaluate_features": "reidcore.evaluation.evaluator",
    "average_query_expansion": "reidcore.evaluation.evaluator",
    "RankingEvaluator": "reidcore.evaluation.evaluator",
    "RankingConfig": "reidcore.evaluation.config",
    "save_ranked_results": "reidcore.evaluation.visualize",
    "ranked_results_image": "reidcore.evaluation.visualize",
}

__all__ = [
    "PROTOCOLS",
    "RankResult",
    "RankingConfig",
    "RankingEvaluator",
    "average_query_expansion",
    "evaluate_features",
    "iter_distance_chunks",
    "k_reciprocal_rerank",
    "pairwise_distance",
    "rank_metrics",
    "ranked_results_image",
    "save_ranked_results",
]
assert sorted(__all__) == sorted(_LAZY)

if TYPE_CHECKING:
    from reidcore.evaluation.config import RankingConfig
    from reidcore.evaluation.distance import iter_distance_chunks, pairwise_distance
    from reidcore.evaluation.evaluator import (
        RankingEvaluator,
        average_query_expansion,
        evaluate_features,
    )
    from reidcore.evaluation.ranking import PROTOCOLS, RankResult, rank_metrics
    from reidcore.evaluation.rerank import k_reciprocal_rerank
    from reidcore.evaluation.visualize import ranked_results_image, save_ranked_results


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

"""The core's evaluator components (registered by ``reidcore.builtin``).

Importing this module imports neither torch nor numba: the build function is resolved
lazily from its ``"module:function"`` string.
"""

from __future__ import annotations

from reidcore.evaluation.config import FIDConfig, RankingConfig
from reidcore.registry import ComponentSpec


def evaluator_specs() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            name="ranking",
            kind="evaluator",
            config=RankingConfig,
            build="reidcore.evaluation.evaluator:build_ranking_evaluator",
            summary="CMC, mAP and mINP (numba kernels), optional k-reciprocal re-ranking "
                    "and average query expansion",
        ),
        ComponentSpec(
            name="fid",
            kind="evaluator",
            config=FIDConfig,
            build="reidcore.evaluation.fid:build_fid",
            summary="Frechet distance between two feature sets; Inception-v3 features "
                    "from a local weights file (for methods that generate images)",
        ),
    ]

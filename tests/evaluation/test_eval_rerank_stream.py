"""Re-ranking from features in blocks (no N x N matrix) against the dense path, and the
evaluation memory budget (``evaluate.memory_gb``)."""

import numpy as np
import pytest

from reidcore.errors import ReidError
from reidcore.evaluation import (
    evaluate_features,
    k_reciprocal_rerank,
    pairwise_distance,
    rank_metrics,
)
from reidcore.evaluation.config import RankingConfig
from reidcore.evaluation.evaluator import RankingEvaluator
from reidcore.evaluation.memory import GB
from reidcore.evaluation.rerank import iter_reranked_chunks, rerank_plan
from tests.evaluation.test_eval_evaluator import make_sets


def clustered(seed, num_q, num_g, ids=30, dim=32):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim)) * 1.2
    q_pids, g_pids = rng.integers(0, ids, num_q), rng.integers(0, ids, num_g)
    qf = (centres[q_pids] + rng.standard_normal((num_q, dim))).astype(np.float32)
    gf = (centres[g_pids] + rng.standard_normal((num_g, dim))).astype(np.float32)
    return qf, gf, q_pids, g_pids, rng.integers(0, 4, num_q), rng.integers(0, 4, num_g)


def dense(qf, gf, metric, **kw):
    return k_reciprocal_rerank(pairwise_distance(qf, gf, metric),
                               pairwise_distance(qf, qf, metric),
                               pairwise_distance(gf, gf, metric), **kw)


@pytest.mark.parametrize("metric,kw", [
    ("euclidean", {}),
    ("cosine", {"k1": 12, "k2": 3, "lambda_value": 0.5}),
    ("sqeuclidean", {"k1": 6, "k2": 1, "lambda_value": 0.0}),
    ("l1", {"k1": 4, "k2": 8}),
])
def test_streamed_equals_dense_to_float32_rounding(metric, kw):
    qf, gf, *_ = clustered(1, 150, 650)
    chunks = list(iter_reranked_chunks(qf, gf, metric, block=131, rows=47, **kw))
    assert [start for start, _ in chunks] == list(range(0, 150, 47))
    ours = np.concatenate([block for _, block in chunks])
    assert ours.dtype == np.float32 and ours.shape == (150, 650)
    np.testing.assert_allclose(ours, dense(qf, gf, metric, **kw), atol=2e-6, rtol=0)


def test_evaluation_with_rerank_equals_dense_metrics():
    qf, gf, *labels = clustered(2, 300, 1200)
    expected = rank_metrics(dense(qf, gf, "euclidean"), *labels)
    # a budget small enough to force several neighbour blocks and query chunks
    ours = evaluate_features(qf, gf, *labels, rerank=True, memory_bytes=int(0.012 * GB))
    assert ours.reranked
    np.testing.assert_array_equal(ours.first_match_rank, expected.first_match_rank)
    np.testing.assert_allclose(ours.ap, expected.ap, atol=1e-9, rtol=0)
    assert abs(ours.mAP - expected.mAP) < 1e-9 and abs(ours.mINP - expected.mINP) < 1e-9
    plan = rerank_plan(300, 1200, 32, memory_bytes=int(0.012 * GB))
    assert plan["block"] < 1500 and plan["rows"] < 300


def test_a_budget_too_small_is_a_clear_error_before_allocating():
    qf, gf, *labels = clustered(3, 40, 160)
    with pytest.raises(ReidError, match=r"needs about .* GB .*evaluate.memory_gb"):
        evaluate_features(qf, gf, *labels, rerank=True, memory_bytes=10_000)
    # the plan alone refuses an MSMT17-sized re-ranking in 1 GB, naming the figure
    with pytest.raises(ReidError, match=r"re-ranking 11,659 queries x 82,161 gallery"):
        rerank_plan(11659, 82161, 2048, memory_bytes=GB)
    assert rerank_plan(11659, 82161, 2048, memory_bytes=6 * GB)["planned_bytes"] < 2 * GB
    # plain ranking: asked-for chunks that do not fit
    with pytest.raises(ReidError, match="chunks of 40 query rows"):
        evaluate_features(qf, gf, *labels, rows=40, memory_bytes=4000, verification=False)


def test_memory_gb_option_and_out_of_memory_is_a_reid_error(monkeypatch):
    query, gallery = make_sets()
    assert RankingConfig().memory_gb == 0.0
    with pytest.raises(ValueError):
        RankingConfig(memory_gb=-1)
    with pytest.raises(ReidError, match="memory budget of 0.00 GB"):
        RankingEvaluator(RankingConfig(memory_gb=1e-6, rerank=True)).evaluate(query, gallery)
    tight = RankingEvaluator(RankingConfig(memory_gb=0.001, rerank=True))
    roomy = RankingEvaluator(RankingConfig(rerank=True))
    assert tight.evaluate(query, gallery) == roomy.evaluate(query, gallery)

    import reidcore.evaluation.evaluator as evaluator

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.64 TiB for an array")

    monkeypatch.setattr(evaluator, "iter_distance_chunks", exhausted)
    with pytest.raises(ReidError, match="ran out of memory"):
        RankingEvaluator(RankingConfig()).evaluate(query, gallery)

"""Chunked torch distances against float64 NumPy formulas."""

import numpy as np
import pytest
import torch

from reidcore.errors import ReidError
from reidcore.evaluation import iter_distance_chunks, pairwise_distance


def naive(q, g, metric):
    q, g = q.astype(np.float64), g.astype(np.float64)
    if metric == "l1":
        return np.abs(q[:, None, :] - g[None, :, :]).sum(-1)
    sq = ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    if metric == "sqeuclidean":
        return sq
    if metric == "euclidean":
        return np.sqrt(sq)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    return 1 - qn @ gn.T


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine", "l1"])
def test_metrics_match_naive_formulas_in_any_chunking(metric):
    rng = np.random.default_rng(0)
    q = rng.standard_normal((13, 7)).astype(np.float32)
    g = rng.standard_normal((21, 7)).astype(np.float32)
    full = pairwise_distance(q, g, metric)
    assert full.dtype == np.float32 and full.shape == (13, 21)
    np.testing.assert_allclose(full, naive(q, g, metric), rtol=1e-5, atol=1e-5)
    chunked = pairwise_distance(torch.from_numpy(q), torch.from_numpy(g), metric, rows=4)
    np.testing.assert_allclose(chunked, full, rtol=1e-6, atol=1e-6)
    starts = [start for start, block in iter_distance_chunks(q, g, metric, rows=5)]
    assert starts == [0, 5, 10]


def test_euclidean_self_distance_is_never_negative():
    x = np.random.default_rng(1).standard_normal((50, 32)).astype(np.float32) * 100
    d = pairwise_distance(x, x, "sqeuclidean")
    assert (d >= 0).all()


def test_bad_inputs_are_user_errors():
    with pytest.raises(ReidError, match="unknown distance metric"):
        pairwise_distance(np.ones((2, 3)), np.ones((2, 3)), "manhattan")
    with pytest.raises(ReidError, match="dimension"):
        pairwise_distance(np.ones((2, 3)), np.ones((2, 4)))


def test_l1_by_hand():
    # |0-3| + |0-4| = 7, |0-1| + |0-0| = 1, |1-3| + |1-4| = 5, |1-1| + |1-0| = 1
    q = np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)
    g = np.array([[3.0, 4.0], [1.0, 0.0]], np.float32)
    np.testing.assert_array_equal(pairwise_distance(q, g, "l1"), [[7.0, 1.0], [5.0, 1.0]])

"""k-reciprocal re-ranking against a float64 dense re-statement of the published code."""

import numpy as np
import pytest
import torch

from reidcore.errors import ReidError
from reidcore.evaluation import k_reciprocal_rerank, pairwise_distance, rank_metrics
from reidcore.evaluation.reference import reference_rerank


def clustered(rng, num, ids, dim=16):
    pids = rng.integers(0, ids, num)
    centres = np.random.default_rng(99).standard_normal((ids, dim)) * 1.5
    return (centres[pids] + rng.standard_normal((num, dim))).astype(np.float32), pids


@pytest.mark.parametrize("num_q,num_g,k1,k2,lam", [
    (12, 50, 20, 6, 0.3),    # defaults
    (30, 140, 6, 3, 0.5),
    (25, 90, 4, 1, 0.0),     # no local query expansion, pure Jaccard
    (4, 9, 20, 6, 1.0),      # fewer items than k1 + 1
    (20, 60, 7, 8, 0.3),     # k2 > k1 + 1
])
def test_equals_float64_reference(num_q, num_g, k1, k2, lam):
    rng = np.random.default_rng(num_q * 1000 + num_g)
    q, _ = clustered(rng, num_q, 6)
    g, _ = clustered(rng, num_g, 6)
    # torch-computed distances are not exactly symmetric: the published transposes matter
    qg, qq, gg = (pairwise_distance(a, b) for a, b in ((q, g), (q, q), (g, g)))
    ours = k_reciprocal_rerank(qg, qq, gg, k1=k1, k2=k2, lambda_value=lam)
    expected = reference_rerank(qg, qq, gg, k1, k2, lam)
    assert ours.shape == (num_q, num_g) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)


def test_ties_and_duplicate_features_follow_index_order():
    rng = np.random.default_rng(7)
    g = np.repeat(rng.integers(0, 3, (15, 4)).astype(np.float32), 2, axis=0)  # duplicates
    q = g[::5].copy()
    qg, qq, gg = (pairwise_distance(a, b, "sqeuclidean") for a, b in
                  ((q, g), (q, q), (g, g)))
    ours = k_reciprocal_rerank(qg, qq, gg, k1=5, k2=3)
    np.testing.assert_allclose(ours, reference_rerank(qg, qq, gg, 5, 3), atol=1e-5, rtol=0)


def test_accepts_tensors_and_improves_a_clustered_ranking():
    rng = np.random.default_rng(8)
    q, q_pids = clustered(rng, 40, 8)
    g, g_pids = clustered(rng, 200, 8)
    qt, gt = torch.from_numpy(q), torch.from_numpy(g)
    qg = torch.cdist(qt, gt)
    out = k_reciprocal_rerank(qg, torch.cdist(qt, qt), torch.cdist(gt, gt))
    cams = np.zeros(40, int), np.ones(200, int)
    before = rank_metrics(qg.numpy(), q_pids, g_pids, *cams).mAP
    after = rank_metrics(out, q_pids, g_pids, *cams).mAP
    assert after > before


def test_bad_arguments_are_user_errors():
    d = np.ones((2, 3), np.float32)
    with pytest.raises(ReidError, match="k1"):
        k_reciprocal_rerank(d, np.ones((2, 2)), np.ones((3, 3)), k1=0)
    with pytest.raises(ReidError, match="g_g_dist"):
        k_reciprocal_rerank(d, np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ReidError, match="lambda"):
        k_reciprocal_rerank(d, np.ones((2, 2)), np.ones((3, 3)), lambda_value=2.0)

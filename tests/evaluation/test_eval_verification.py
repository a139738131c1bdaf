"""TPR@FPR from the streamed pass, bootstrap intervals over queries, per-query files and
non-finite features: against hand-worked values and a plain NumPy reference."""

import numpy as np
import pytest

from reidcore.errors import ReidError
from reidcore.evaluation import evaluate_features, pairwise_distance
from reidcore.evaluation.bootstrap import bootstrap_intervals
from reidcore.evaluation.verification import (
    VerificationPass,
    label,
    metric_name,
    negative_pairs,
    reference_tpr_at_fpr,
)


def test_tpr_at_fpr_by_hand():
    # one query; positives at 1 and 3; negatives at 2, 4, 5, 6; junk at 0.5 is no pair
    d = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.5]], np.float32)
    g_pids = np.array([7, 2, 7, 3, 4, 5, -1])
    assert negative_pairs(g_pids, np.array([7])) == 4
    check = VerificationPass(4, fprs=(0.1, 0.25, 0.5, 1.0))
    check.add(d, np.array([7]), g_pids, np.array([1.0, 3.0]))
    # FPR <= 0.1: no negative accepted, threshold below 2 -> positive 1 only
    # FPR <= 0.25: one negative (2) accepted, threshold below 4 -> both positives
    assert check.result() == {0.1: 0.5, 0.25: 1.0, 0.5: 1.0, 1.0: 1.0}
    assert reference_tpr_at_fpr(d, [7], g_pids, fprs=(0.1, 0.25)) == {0.1: 0.5, 0.25: 1.0}


def test_tied_negative_at_the_threshold_is_not_accepted():
    d = np.array([[2.0, 2.0, 1.0, 2.0]], np.float32)  # positive tied with a negative
    g_pids = np.array([1, 2, 3, 4])
    check = VerificationPass(3, fprs=(0.34,))  # one negative (1.0) may be accepted
    check.add(d, np.array([1]), g_pids, np.array([2.0]))
    assert check.result() == {0.34: 0.0}
    assert reference_tpr_at_fpr(d, [1], g_pids, fprs=(0.34,)) == {0.34: 0.0}


@pytest.mark.parametrize("case", range(6))
def test_streamed_tpr_equals_the_numpy_reference(case):
    rng = np.random.default_rng(case)
    num_q, num_g, ids = 60 + 20 * case, 700 + 150 * case, 12
    q_pids = rng.integers(1, ids, num_q)
    g_pids = rng.integers(-1, ids, num_g)  # junk (-1) and distractors (0) included
    q_cams, g_cams = rng.integers(0, 3, num_q), rng.integers(0, 3, num_g)
    centres = rng.standard_normal((ids, 6))
    qf = centres[q_pids] + rng.standard_normal((num_q, 6))
    gf = centres[np.maximum(g_pids, 0)] + rng.standard_normal((num_g, 6))
    if case % 2:  # coarse features: many tied distances
        qf, gf = np.round(qf), np.round(gf)
    qf, gf = qf.astype(np.float32), gf.astype(np.float32)
    metric = ("euclidean", "cosine", "l1")[case % 3]
    result = evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, metric=metric,
                               rows=7, bootstrap=0)  # many chunks, buffer cut many times
    d = pairwise_distance(qf, gf, metric)
    expected = reference_tpr_at_fpr(d, q_pids, g_pids, q_cams, g_cams)
    assert result.tpr_at_fpr == expected
    assert result.summary()[metric_name(1e-3)] == expected[1e-3]
    assert result.to_dict()["tpr_at_fpr"][label(1e-2)] == expected[1e-2]


def test_no_camera_protocol_leaves_out_the_query_itself():
    rng = np.random.default_rng(9)
    gf = rng.standard_normal((300, 4)).astype(np.float32)
    g_pids = rng.integers(1, 15, 300)
    own = rng.choice(300, 40, replace=False)
    result = evaluate_features(gf[own], gf, g_pids[own], g_pids, protocol="no-camera",
                               query_gallery_index=own, rows=9, bootstrap=0)
    d = pairwise_distance(gf[own], gf)
    assert result.tpr_at_fpr == reference_tpr_at_fpr(d, g_pids[own], g_pids,
                                                     query_gallery_index=own)


def test_bootstrap_intervals_by_hand_and_seeded():
    assert bootstrap_intervals({"x": np.full(50, 0.25)}) == {"x": (0.25, 0.25)}
    # two values 0 and 1: resample means 0, 0.5, 1 (1/4, 1/2, 1/4) -> 95 % interval [0, 1]
    low, high = bootstrap_intervals({"x": np.array([0.0, 1.0])}, resamples=2000)["x"]
    assert (low, high) == (0.0, 1.0)
    values = {"a": np.random.default_rng(0).random(500)}
    first = bootstrap_intervals(values, seed=3)
    assert first == bootstrap_intervals(values, seed=3)
    assert first != bootstrap_intervals(values, seed=4)
    # the spread of a mean of 500 uniform values: sd 0.2887 / sqrt(500) = 0.0129
    width = first["a"][1] - first["a"][0]
    assert 2 * 1.96 * 0.0129 * 0.85 < width < 2 * 1.96 * 0.0129 * 1.15
    with pytest.raises(ReidError, match="confidence"):
        bootstrap_intervals(values, confidence=95)


def test_intervals_and_per_query_file_in_the_result(tmp_path):
    rng = np.random.default_rng(2)
    q_pids, g_pids = rng.integers(1, 10, 80), rng.integers(1, 10, 400)
    qf = rng.standard_normal((80, 5)).astype(np.float32) + q_pids[:, None]
    gf = rng.standard_normal((400, 5)).astype(np.float32) + g_pids[:, None]
    result = evaluate_features(qf, gf, q_pids, g_pids, rng.integers(0, 2, 80),
                               rng.integers(0, 2, 400), seed=5, ci_ranks=(1, 3))
    low, high = result.intervals["mAP"]
    assert low < result.mAP < high and set(result.intervals) == {"mAP", "mINP", "rank1",
                                                                 "rank3"}
    first = result.first_match_rank[~result.skipped]
    same = bootstrap_intervals({"rank3": (first <= 3).astype(float)}, seed=5)
    assert result.intervals["rank3"] == same["rank3"]  # one set of resamples for all
    summary = result.summary()
    assert summary["mAP_ci_low"] == low and summary["rank3_ci_high"] == \
        result.intervals["rank3"][1]
    path = result.write_per_query(tmp_path / "per_query.npz", [f"q{i}" for i in range(80)])
    with np.load(path) as data:
        assert data["ap"].dtype == np.float32 and data["paths"][4] == "q4"
        np.testing.assert_array_equal(data["first_match_rank"], result.first_match_rank)
        np.testing.assert_allclose(data["inp"], result.inp, rtol=1e-6)


@pytest.mark.parametrize("rerank", [False, True])
def test_non_finite_features_are_named_with_their_rows(rerank):
    rng = np.random.default_rng(0)
    qf, gf = rng.standard_normal((5, 4)), rng.standard_normal((30, 4))
    gf[[3, 17], 1] = np.nan
    gf[20, 0] = np.inf
    with pytest.raises(ReidError, match=r"gallery features .* 3 of 30 rows .*: 3, 17, 20"):
        evaluate_features(qf, gf, np.arange(5), np.arange(30) % 5, rerank=rerank)


def test_verification_memory_is_checked_before_the_pass():
    rng = np.random.default_rng(0)
    with pytest.raises(ReidError, match=r"TPR@FPR \(evaluate.verification = false"):
        evaluate_features(rng.standard_normal((50, 4)), rng.standard_normal((900, 4)),
                          np.arange(50) % 7, np.arange(900) % 7, memory_bytes=1000)

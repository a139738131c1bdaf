"""The numba kernels against the plain NumPy reference (full stable argsort) on random
cases: ties, junk, distractors, queries without a valid match, all protocols."""

import numpy as np
import pytest

from reidcore.evaluation import rank_metrics
from reidcore.evaluation.reference import reference_rank, reference_sgs_cmc


def random_case(rng, *, ties: bool, dtype=np.float32):
    num_q, num_g = int(rng.integers(1, 40)), int(rng.integers(1, 120))
    num_ids = int(rng.integers(1, 12))
    if ties:  # few distinct values: many exact ties
        d = rng.integers(0, 6, (num_q, num_g)).astype(dtype)
    else:
        d = rng.random((num_q, num_g)).astype(dtype)
    q_pids = rng.integers(-1, num_ids + 1, num_q)  # -1 junk, 0 distractors
    g_pids = rng.integers(-1, num_ids + 1, num_g)
    q_cams = rng.integers(0, 3, num_q)
    g_cams = rng.integers(0, 3, num_g)
    return d, q_pids, g_pids, q_cams, g_cams


def assert_same(result, ref, max_rank):
    assert (result.skipped == ~ref["valid"]).all()
    np.testing.assert_array_equal(result.first_match_rank, ref["first"])
    valid = ref["valid"]
    np.testing.assert_allclose(result.ap[valid], ref["ap"][valid], rtol=1e-12, atol=0)
    np.testing.assert_allclose(result.inp[valid], ref["inp"][valid], rtol=1e-12, atol=0)
    np.testing.assert_allclose(result.cmc, ref["cmc"][:max_rank], rtol=1e-12, atol=0)
    assert result.mAP == pytest.approx(ref["mAP"], rel=1e-12)
    assert result.mINP == pytest.approx(ref["mINP"], rel=1e-12)
    assert result.num_valid_queries == int(valid.sum())


@pytest.mark.parametrize("ties", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_market_protocol_equals_reference(ties, dtype):
    rng = np.random.default_rng(10 + ties + 2 * (dtype == np.float64))
    checked = 0
    for _ in range(40):
        d, qp, gp, qc, gc = random_case(rng, ties=ties, dtype=dtype)
        ref = reference_rank(d, qp, gp, qc, gc, max_rank=30)
        if not ref["valid"].any():
            continue
        assert_same(rank_metrics(d, qp, gp, qc, gc, max_rank=30), ref, 30)
        interp = reference_rank(d, qp, gp, qc, gc, max_rank=30, interpolated=True)
        result = rank_metrics(d, qp, gp, qc, gc, max_rank=30,
                              average_precision="interpolated")
        np.testing.assert_allclose(result.ap[interp["valid"]],
                                   interp["ap"][interp["valid"]], rtol=1e-12)
        checked += 1
    assert checked > 20


def test_no_camera_protocol_equals_reference():
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(60):
        d, qp, gp, _, _ = random_case(rng, ties=True)
        # some queries are gallery images themselves
        self_index = np.where(rng.random(len(qp)) < 0.5,
                              rng.integers(0, d.shape[1], len(qp)), -1)
        qp = np.where(self_index >= 0, gp[np.maximum(self_index, 0)], qp)
        ref = reference_rank(d, qp, gp, max_rank=20, protocol="no-camera",
                             query_gallery_index=self_index)
        if not ref["valid"].any():
            continue
        result = rank_metrics(d, qp, gp, max_rank=20, protocol="no-camera",
                              query_gallery_index=self_index)
        assert_same(result, ref, 20)
        checked += 1
    assert checked > 30


def test_single_gallery_shot_equals_reference_draws():
    rng = np.random.default_rng(4)
    checked = 0
    for trial in range(25):
        d, qp, gp, qc, gc = random_case(rng, ties=True)
        ref = reference_rank(d, qp, gp, qc, gc, max_rank=15)
        if not ref["valid"].any():
            continue
        result = rank_metrics(d, qp, gp, qc, gc, max_rank=15, protocol="single-gallery-shot",
                              sgs_repeats=7, seed=trial)
        expected = reference_sgs_cmc(d, qp, gp, qc, gc, max_rank=15, repeats=7, seed=trial)
        np.testing.assert_allclose(result.cmc, expected, rtol=1e-12)
        np.testing.assert_allclose(result.ap[ref["valid"]], ref["ap"][ref["valid"]],
                                   rtol=1e-12)
        checked += 1
    assert checked > 10


def test_realistic_sized_case_equals_reference():
    rng = np.random.default_rng(5)
    num_ids = 60
    q_pids = rng.integers(1, num_ids, 150)
    g_pids = np.concatenate([rng.integers(1, num_ids, 500), np.zeros(80, int),
                             -np.ones(70, int)])
    q_cams, g_cams = rng.integers(0, 6, 150), rng.integers(0, 6, 650)
    centres = 1.5 * rng.standard_normal((num_ids, 8))
    qf = centres[q_pids] + rng.standard_normal((150, 8))
    gf = np.where(g_pids[:, None] > 0, centres[np.maximum(g_pids, 0)], 0) + \
        rng.standard_normal((650, 8))
    d = np.round(((qf[:, None] - gf[None]) ** 2).sum(-1), 1).astype(np.float32)
    ref = reference_rank(d, q_pids, g_pids, q_cams, g_cams)
    assert 0.2 < ref["mAP"] < 0.99
    assert_same(rank_metrics(d, q_pids, g_pids, q_cams, g_cams), ref, 50)

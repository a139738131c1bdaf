"""Metric values on tiny rankings worked out by hand (fractions in the comments)."""

from fractions import Fraction

import numpy as np
import pytest

from reidcore.errors import ReidError
from reidcore.evaluation import rank_metrics


def test_one_query_five_gallery_with_a_removed_same_camera_match():
    # gallery (distance, pid, cam); query pid 1, cam 0
    d = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]], np.float32)
    g_pids = np.array([2, 1, 3, 1, 1])
    g_cams = np.array([1, 1, 1, 1, 0])  # the last one: same pid, same camera -> removed
    r = rank_metrics(d, [1], g_pids, [0], g_cams, max_rank=5)
    # valid ranking: neg, POS, neg, POS -> positives at ranks 2 and 4
    assert r.ap[0] == pytest.approx(float(Fraction(1, 2) * (Fraction(1, 2) + Fraction(2, 4))))
    assert r.mAP == pytest.approx(0.5)
    assert r.mINP == pytest.approx(2 / 4)
    assert r.first_match_rank.tolist() == [2]
    assert r.num_positives.tolist() == [2]
    assert r.cmc.tolist() == [0, 1, 1, 1, 1]
    # official Market-1501 (interpolated): ((0 + 1/2)/2 + (1/3 + 2/4)/2) / 2 = 1/3
    ri = rank_metrics(d, [1], g_pids, [0], g_cams, max_rank=5,
                      average_precision="interpolated")
    assert ri.mAP == pytest.approx(1 / 3)


def _junk_distractor_tie_case():
    #            idx: 0     1     2     3     4     5     6
    d = np.array([[0.5, 0.2, 0.1, 0.5, 0.3, 0.9, 0.5]], np.float32)
    g_pids = np.array([7, 0, -1, 5, 7, 7, 0])
    g_cams = np.array([2, 2, 3, 2, 1, 3, 1])
    # query pid 7 cam 1: idx 2 junk (removed), idx 4 same pid+cam (removed),
    # idx 1 and 6 distractors (negatives). Ties at 0.5: idx 0 < 3 < 6 (gallery order).
    # valid order: 1, 0(POS), 3, 6, 5(POS) -> positive ranks 2 and 5
    return d, np.array([7]), g_pids, np.array([1]), g_cams


def test_junk_distractors_and_ties_broken_by_gallery_order():
    d, q_pids, g_pids, q_cams, g_cams = _junk_distractor_tie_case()
    r = rank_metrics(d, q_pids, g_pids, q_cams, g_cams, max_rank=6)
    assert r.mAP == pytest.approx(float(Fraction(1, 2) * (Fraction(1, 2) + Fraction(2, 5))))
    assert r.mINP == pytest.approx(2 / 5)
    assert r.cmc.tolist() == [0, 1, 1, 1, 1, 1]
    interpolated = rank_metrics(d, q_pids, g_pids, q_cams, g_cams,
                                average_precision="interpolated")
    # ((0 + 1/2)/2 + (1/4 + 2/5)/2) / 2 = 23/80
    assert interpolated.mAP == pytest.approx(23 / 80)


def test_a_tied_positive_later_in_gallery_order_ranks_after_the_negatives():
    d, q_pids, g_pids, q_cams, g_cams = _junk_distractor_tie_case()
    # move the positive at 0.5 behind both tied negatives: swap gallery items 0 and 6
    perm = np.array([6, 1, 2, 3, 4, 5, 0])
    r = rank_metrics(d[:, perm], q_pids, g_pids[perm], q_cams, g_cams[perm])
    # valid order: 1, 3, 6(neg), 0(POS), 5(POS) -> ranks 4 and 5
    assert r.mAP == pytest.approx((1 / 4 + 2 / 5) / 2)
    assert r.first_match_rank.tolist() == [4]


def test_query_without_valid_match_is_skipped_and_counted():
    d = np.array([[0.1, 0.2, 0.3], [0.3, 0.1, 0.2]], np.float32)
    g_pids = np.array([1, 2, 9])
    g_cams = np.array([0, 1, 1])
    # query 0: pid 2 cam 0 -> match idx 1 at rank 2; query 1: pid 9 cam 1, its only
    # gallery image is on the same camera -> skipped
    r = rank_metrics(d, [2, 9], g_pids, [0, 1], g_cams, max_rank=3)
    assert r.num_valid_queries == 1
    assert r.num_skipped_queries == 1
    assert r.skipped.tolist() == [False, True]
    assert r.mAP == pytest.approx(0.5)
    assert np.isnan(r.ap[1]) and r.first_match_rank[1] == 0
    assert r.cmc.tolist() == [0, 1, 1]
    assert r.summary()["num_skipped_queries"] == 1


def test_no_valid_query_at_all_is_an_error():
    with pytest.raises(ReidError, match="no query has a valid match"):
        rank_metrics(np.zeros((1, 2)), [3], [1, 2], [0], [0, 0])


def test_no_camera_protocol_removes_only_the_query_itself():
    # gallery 0 is the query image itself (distance 0), gallery 1 the same person, 2 another
    d = np.array([[0.0, 0.3, 0.2]])
    r = rank_metrics(d, [1], [1, 1, 2], protocol="no-camera", query_gallery_index=[0])
    assert r.mAP == pytest.approx(1 / 2)  # other person first, then the match
    # unknown identity of the query's own image: nothing removed, itself at rank 1
    r = rank_metrics(d, [1], [1, 1, 2], protocol="no-camera")
    assert r.mAP == pytest.approx((1 + 2 / 3) / 2)
    assert r.protocol == "no-camera"


def test_market_protocol_without_cameras_is_an_error():
    with pytest.raises(ReidError, match="no-camera"):
        rank_metrics(np.zeros((1, 2)), [1], [1, 2])


def test_single_gallery_shot_with_one_image_per_identity_is_deterministic():
    rng = np.random.default_rng(1)
    d = rng.random((6, 5))
    g_pids = np.array([1, 2, 3, 4, 5])
    q_pids = np.array([1, 2, 3, 4, 5, 1])
    q_cams, g_cams = np.zeros(6, int), np.ones(5, int)
    sgs = rank_metrics(d, q_pids, g_pids, q_cams, g_cams, max_rank=5,
                       protocol="single-gallery-shot")
    market = rank_metrics(d, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    np.testing.assert_allclose(sgs.cmc, market.cmc)
    assert sgs.mAP == pytest.approx(market.mAP)


def test_single_gallery_shot_averages_over_seeded_draws():
    # query pid 1 cam 0; pid 1 has images at ranks 1 and 3, pid 2 one image at rank 2,
    # pid 1 also one image on the query's camera (never drawn).
    d = np.array([[0.1, 0.2, 0.3, 0.05]])
    g_pids, g_cams = np.array([1, 2, 1, 1]), np.array([1, 1, 1, 0])
    kwargs = dict(max_rank=3, protocol="single-gallery-shot", sgs_repeats=400)
    r = rank_metrics(d, [1], g_pids, [0], g_cams, seed=5, **kwargs)
    # drawing idx 0 -> first match at rank 1, idx 2 -> rank 2 (behind pid 2): cmc[0] ~ 1/2
    assert 0.4 < r.cmc[0] < 0.6
    assert r.cmc[1] == 1.0 and r.cmc[2] == 1.0
    again = rank_metrics(d, [1], g_pids, [0], g_cams, seed=5, **kwargs)
    assert again.cmc[0] == r.cmc[0]
    other = rank_metrics(d, [1], g_pids, [0], g_cams, seed=6, **kwargs)
    assert other.cmc[0] != r.cmc[0]
    # mAP uses the whole gallery: positives at ranks 1 and 3 -> (1 + 2/3) / 2
    assert r.mAP == pytest.approx((1 + 2 / 3) / 2)


def test_nan_distances_are_reported():
    with pytest.raises(ReidError, match="NaN"):
        rank_metrics(np.array([[np.nan, 0.1]]), [1], [1, 2], [0], [1, 1])


def test_bad_shapes_and_protocols_are_user_errors():
    with pytest.raises(ReidError, match="length 2"):
        rank_metrics(np.zeros((1, 2)), [1], [1, 2, 3], [0], [1, 1])
    with pytest.raises(ReidError, match="unknown evaluation protocol"):
        rank_metrics(np.zeros((1, 2)), [1], [1, 2], [0], [1, 1], protocol="duke")


def test_cmc_is_padded_to_max_rank_and_rank_accessor():
    r = rank_metrics(np.array([[0.2, 0.1]]), [1], [1, 2], [0], [1, 1], max_rank=4)
    assert r.cmc.tolist() == [0, 1, 1, 1]
    assert r.rank(2) == 1.0
    with pytest.raises(ValueError):
        r.rank(5)

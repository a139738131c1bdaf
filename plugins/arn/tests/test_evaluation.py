"""arn_ranking: a true L1 distance (not scipy's 'hamming', as the official code's L1)."""

import numpy as np
import pytest
import torch
from reidcore.api import FeatureSet

from reid_plugin_arn.config import ArnRankingConfig
from reid_plugin_arn.evaluation import ArnRanking, distances


def test_l1_euclidean_cosine_by_hand():
    q = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    g = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    assert np.allclose(distances(q, g, "l1"), [[7.0, 1.0], [5.0, 1.0]])
    assert np.allclose(distances(q, g, "euclidean"), [[5.0, 1.0], [np.sqrt(13), 1.0]])
    # cos((1,1), (3,4)) = 7 / (sqrt2 * 5); cos((1,1), (1,0)) = 1 / sqrt2
    cos = distances(q[1:], g, "cosine")
    assert np.allclose(cos, [[1 - 7 / (np.sqrt(2) * 5), 1 - 1 / np.sqrt(2)]])
    assert np.allclose(distances(q, g, "l1", chunk_rows=1), distances(q, g, "l1"))


def test_l1_ranks_differently_from_the_official_hamming():
    # the query differs from gallery A slightly in every coordinate (hamming 1, L1 0.3)
    # and from gallery B a lot in one coordinate (hamming 1/3, L1 5): L1 ranks A first,
    # the official 'hamming' would rank B first
    query = FeatureSet(torch.tensor([[1.0, 1.0, 1.0]]), np.array([1]), np.array([0]))
    gallery = FeatureSet(torch.tensor([[1.1, 1.1, 1.1], [1.0, 1.0, 6.0]]), np.array([1, 2]),
                         np.array([1, 1]))
    metrics = ArnRanking(ArnRankingConfig(metric="l1", ranks=[1])).evaluate(query, gallery)
    assert metrics["rank1"] == 1.0 and metrics["mAP"] == pytest.approx(1.0)
    hamming = (query.features[:, None, :] != gallery.features[None]).float().mean(-1)
    assert hamming.argmin().item() == 1  # what the official evaluation would have matched


def test_market_protocol_removes_same_camera_matches():
    # the only same-pid gallery item on the query's camera is removed: the other one, at
    # rank 2 behind a distractor identity, gives AP 1/2
    query = FeatureSet(torch.tensor([[0.0]]), np.array([1]), np.array([0]))
    gallery = FeatureSet(torch.tensor([[0.0], [1.0], [2.0]]), np.array([1, 2, 1]),
                         np.array([0, 1, 1]))
    metrics = ArnRanking(ArnRankingConfig(metric="euclidean")).evaluate(query, gallery)
    assert metrics["mAP"] == pytest.approx(0.5) and metrics["rank1"] == 0.0
    assert metrics["rank5"] == 1.0

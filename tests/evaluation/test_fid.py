"""The Frechet distance on cases with a closed form, and the FID component's behaviour
with and without Inception weights."""

import math

import numpy as np
import pytest
import torch

from reidcore.errors import ReidError
from reidcore.evaluation.config import FIDConfig
from reidcore.evaluation.fid import (
    FID,
    MissingWeightsError,
    frechet_distance,
    frechet_distance_of_features,
    load_inception,
    statistics,
)
from reidcore.records import FeatureSet


def test_identical_gaussians_are_at_distance_zero():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    sigma = a @ a.T + np.eye(6)
    mu = rng.normal(size=6)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_shifted_means_give_the_squared_distance():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 5))
    sigma = a @ a.T
    mu1, mu2 = np.zeros(5), np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(1 + 4 + 0.25 + 9)


def test_diagonal_covariances():
    # diagonal S1, S2: Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(a_i) - sqrt(b_i))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum() + 2.0 ** 2  # plus a mean gap of 2
    got = frechet_distance(np.zeros(3), np.diag(a), np.array([0, 2.0, 0]), np.diag(b))
    assert got == pytest.approx(expected)
    assert expected == pytest.approx(1 + 1 + 6.25 + 4)


def test_one_dimensional_and_commuting_case():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 ; a rotated diagonal pair commutes: same eigen-formula
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)
    rot = np.array([[math.cos(0.3), -math.sin(0.3)], [math.sin(0.3), math.cos(0.3)]])
    s1 = rot @ np.diag([1.0, 16.0]) @ rot.T
    s2 = rot @ np.diag([9.0, 4.0]) @ rot.T
    assert frechet_distance(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx(4 + 4)


def test_non_commuting_case_matches_the_definition():
    # Tr sqrt(S1 S2) checked against the eigenvalues of S1 S2 (real, non-negative)
    s1 = np.array([[2.0, 1.0], [1.0, 2.0]])
    s2 = np.array([[1.0, 0.0], [0.0, 3.0]])
    eig = np.linalg.eigvals(s1 @ s2)
    expected = np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig.real).sum()
    assert frechet_distance(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx(expected)


def test_statistics_are_mean_and_unbiased_covariance():
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    mu, sigma = statistics(x)
    assert np.allclose(mu, 0) and np.allclose(sigma, np.diag([2 / 3, 8 / 3]))


@pytest.mark.parametrize("n1, n2, d", [(5, 7, 12), (40, 30, 6)])
def test_sample_route_equals_the_covariance_route(n1, n2, d):
    # few samples in many dimensions use the N x N singular-value route; compare it with
    # the D x D statistics route on the same data
    rng = np.random.default_rng(n1)
    x, y = rng.normal(size=(n1, d)), rng.normal(1.0, 2.0, size=(n2, d))
    by_stats = frechet_distance(*statistics(x), *statistics(y))
    # (rank-deficient covariances: the eigen route carries sqrt(round-off) terms ~1e-7)
    assert frechet_distance_of_features(x, y) == pytest.approx(by_stats, rel=1e-6)


def test_evaluate_compares_the_two_feature_sets():
    # gallery = query + a constant shift: same covariance, FID = ||shift||^2 exactly
    rng = torch.Generator().manual_seed(0)
    x = torch.randn(20, 4, generator=rng, dtype=torch.float64)
    shift = torch.tensor([1.0, 0.0, -1.0, 2.0], dtype=torch.float64)
    pids = np.arange(20)
    fid = FID(FIDConfig())
    metrics = fid.evaluate(FeatureSet(x, pids), FeatureSet(x + shift, pids))
    assert set(metrics) == {"fid"}
    assert metrics["fid"] == pytest.approx(6.0, rel=1e-9)
    assert fid.evaluate(FeatureSet(x, pids), FeatureSet(x, pids))["fid"] == pytest.approx(
        0.0, abs=1e-9)


def test_builds_without_weights_but_features_need_them(tmp_path):
    fid = FID(FIDConfig())  # no weights: fine until features are computed from images
    with pytest.raises(ReidError, match="needs Inception-v3 weights"):
        fid.features(torch.rand(2, 3, 32, 16))
    with pytest.raises(MissingWeightsError, match="not found"):
        load_inception(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(MissingWeightsError, match="not a torchvision inception_v3"):
        load_inception(bad)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(MissingWeightsError, match="cannot read"):
        load_inception(garbage)


def test_features_from_a_local_weights_file(tmp_path):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    path = tmp_path / "inception.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(),
               path)
    fid = FID(FIDConfig(weights=str(path), image_size=75, batch_size=2))
    images = torch.rand(3, 3, 64, 32, generator=torch.Generator().manual_seed(0))
    feats = fid.features(images)
    assert feats.shape == (3, 2048) and torch.isfinite(feats).all()
    assert fid.image_fid(images, images) == pytest.approx(0.0, abs=1e-6)

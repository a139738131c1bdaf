"""Loss values on constructed inputs, derived by hand (derivations in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from reidcore.losses.config import CenterConfig, CrossEntropyConfig, TripletConfig
from reidcore.losses.losses import (
    CenterLoss,
    CrossEntropyLoss,
    WeightedLoss,
    batch_hard_triplet,
    build_center,
)

# Two ids: id 0 at (0,0),(1,0); id 1 at (3,0),(3,1).
# Hardest positive distance is 1 for every anchor; hardest negatives:
# (0,0) -> 3, (1,0) -> 2, (3,0) -> 2, (3,1) -> sqrt(5).
POINTS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.0, 1.0]])
IDS = torch.tensor([0, 0, 1, 1])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_triplet_soft_margin_hand_value():
    expected = (softplus(1 - 3) + 2 * softplus(1 - 2) + softplus(1 - math.sqrt(5))) / 4
    assert expected == pytest.approx(0.25212, abs=1e-5)  # also in design/methods/flipreid.md
    value = batch_hard_triplet(POINTS, IDS, soft_margin=True)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_triplet_margin_hand_values():
    # margin 0.3: every gap (1 - d_an) + 0.3 is negative -> 0
    assert batch_hard_triplet(POINTS, IDS, margin=0.3).item() == pytest.approx(0.0, abs=1e-6)
    # margin 1.5: relu(-0.5), relu(0.5), relu(0.5), relu(2.5 - sqrt 5)
    expected = (0 + 0.5 + 0.5 + (2.5 - math.sqrt(5))) / 4
    assert batch_hard_triplet(POINTS, IDS, margin=1.5).item() == pytest.approx(expected, rel=1e-5)


def test_triplet_normalize_and_gradient():
    # normalised: (1,0) and (0,1) same id, (-1,0) other id. d_ap = sqrt2, d_an: 2 / sqrt2 / 2
    feats = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-5.0, 0.0]], requires_grad=True)
    ids = torch.tensor([0, 0, 1])
    value = batch_hard_triplet(feats, ids, margin=0.0, normalize=True)
    s2 = math.sqrt(2)
    # anchor 0: relu(s2 - 2) = 0; anchor 1: relu(s2 - s2) = 0; anchor 2 has no positive but
    # itself (d_ap = 1e-6) and d_an = min(2, s2): relu(1e-6 - s2) = 0
    assert value.item() == pytest.approx(0.0, abs=1e-6)
    value = batch_hard_triplet(feats, ids, margin=1.0, normalize=True)
    expected = ((s2 - 2 + 1) + (s2 - s2 + 1) + max(0.0, 1e-6 - s2 + 1)) / 3
    assert value.item() == pytest.approx(expected, rel=1e-4)
    value.backward()
    assert torch.isfinite(feats.grad).all()


def test_triplet_without_negatives_is_zero_with_gradient():
    feats = torch.randn(4, 3, requires_grad=True)
    value = batch_hard_triplet(feats, torch.zeros(4, dtype=torch.long))
    assert value.item() == 0.0
    value.backward()
    assert feats.grad is not None and torch.equal(feats.grad, torch.zeros_like(feats))


def test_cross_entropy_label_smoothing_hand_values():
    loss = CrossEntropyLoss(label_smoothing=0.1)
    # uniform logits: -log(1/4) whatever the smoothing
    assert loss({"logits": torch.zeros(3, 4)}, {"pids": torch.tensor([0, 1, 3])}).item() == \
        pytest.approx(math.log(4))
    # p = (1/4, 3/4), target 0, eps 0.1, C 2: q = (0.95, 0.05)
    logits = torch.tensor([[0.0, math.log(3.0)]])
    expected = -0.95 * math.log(0.25) - 0.05 * math.log(0.75)
    assert expected == pytest.approx(1.331363, abs=1e-6)
    assert loss({"logits": logits}, {"pids": [0]}).item() == pytest.approx(expected, rel=1e-6)
    plain = CrossEntropyLoss(label_smoothing=0.0)
    assert plain({"logits": logits}, {"pids": [0]}).item() == pytest.approx(math.log(4))


def test_center_loss_hand_value_and_context():
    loss = CenterLoss(num_classes=2, feature_dim=2)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    feats = torch.tensor([[3.0, 4.0], [1.0, 2.0]])
    # ||(3,4)-(0,0)||^2 = 25, ||(1,2)-(1,1)||^2 = 1 -> mean 13
    assert loss({"features": feats}, {"pids": torch.tensor([0, 1])}).item() == pytest.approx(13.0)
    built = build_center(CenterConfig(), num_classes=7, feature_dim=3)
    assert built.centers.shape == (7, 3)
    assert build_center(CenterConfig()).centers.shape == (751, 2048)
    explicit = build_center(CenterConfig(num_classes=5, feature_dim=2), num_classes=9)
    assert explicit.centers.shape == (5, 2)


def test_weighted_sum_and_inputs():
    ce = CrossEntropyLoss(0.0)
    tri = batch_hard_triplet
    total, parts = WeightedLoss(["cross_entropy", "cross_entropy"], [ce, CrossEntropyLoss(0.0)],
                                [1.0, 0.5])({"logits": torch.zeros(2, 4)}, {"pids": [0, 1]})
    assert set(parts) == {"cross_entropy0", "cross_entropy1"}
    assert total.item() == pytest.approx(1.5 * math.log(4))
    assert tri is not None
    with pytest.raises(KeyError, match="input"):
        CrossEntropyLoss()({"scores": torch.zeros(1, 2)}, {"pids": [0]})


def test_configs_validate():
    import attrs

    from reidcore.converter import structure

    _, problems = structure({"label_smoothing": 1.5}, CrossEntropyConfig, "$.losses[0]")
    assert [str(p) for p in problems] == [
        "$.losses[0].label_smoothing: expected a value in [0, 1), got 1.5"]
    _, problems = structure({"margin": -1}, TripletConfig, "$.losses[1]")
    assert problems and problems[0].path == "$.losses[1].margin"
    assert attrs.has(CenterConfig)

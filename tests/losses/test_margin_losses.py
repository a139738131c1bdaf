"""Circle loss, ArcFace / CosFace heads and AGW's weighted regularised triplet: values on
small inputs worked out by hand (the arithmetic is in the comments and expressions), and
against ``pytorch-metric-learning`` (a test-only reference) where its definitions agree.

Where the definitions differ from pytorch-metric-learning (PML):
- PML's distances L2-normalise embeddings by default (``LpDistance(normalize_embeddings=
  True)``); the core's triplets use raw features unless ``normalize``: compared with
  ``LpDistance(normalize_embeddings=False)``.
- PML's ``ArcFaceLoss`` takes its margin in degrees and stores the class weights as
  ``embedding_size x num_classes`` (the transpose of ours).
- PML's ``CircleLoss`` defaults are fine-grained retrieval's (m 0.4, gamma 80); compared at
  both the re-ID defaults (0.25, 128) and PML's.
- PML has no weighted regularised triplet: checked by hand only.
- Reduction: PML averages circle loss over the anchors with a nonzero loss (those with a
  positive and a negative), as we do; fast-reid divides by the batch size (the same with
  P x K batches, where every anchor has both).
"""

from __future__ import annotations

import math

import pytest
import torch

from reidcore.losses.config import (
    ArcFaceConfig,
    CircleConfig,
    CosFaceConfig,
    TripletConfig,
    WeightedTripletConfig,
)
from reidcore.losses.losses import (
    ArcFaceLoss,
    CosFaceLoss,
    batch_hard_triplet,
    build_arcface,
    build_cosface,
    circle_loss,
    weighted_regularized_triplet,
)

pml = pytest.importorskip("pytorch_metric_learning")


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def lse(*values: float) -> float:
    return math.log(sum(math.exp(v) for v in values))


def random_batch(seed: int = 0, ids: int = 4, instances: int = 3, dim: int = 16):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(ids * instances, dim, generator=generator)
    return features, torch.arange(ids).repeat_interleave(instances)


# --- defaults (fast-reid's / the papers') ---------------------------------------------


def test_defaults_are_fast_reids():
    assert (CircleConfig().margin, CircleConfig().gamma) == (0.25, 128.0)
    assert (ArcFaceConfig().scale, ArcFaceConfig().margin) == (64.0, 0.5)
    assert (CosFaceConfig().scale, CosFaceConfig().margin) == (64.0, 0.4)
    assert ArcFaceConfig().input == CosFaceConfig().input == "neck_features"
    assert WeightedTripletConfig().margin == 0.0
    # the soft-margin triplet is the existing `triplet` with soft_margin = true
    assert TripletConfig(soft_margin=True).soft_margin


# --- circle loss ------------------------------------------------------------------------

# Unit vectors: id 0 at a = (1, 0), b = (0.6, 0.8); id 1 at c = (0, 1), d = (-0.6, 0.8).
# Cosines: ab 0.6, ac 0, ad -0.6, bc 0.8, bd 0.28 (-0.36 + 0.64), cd 0.8.
UNIT = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.6, 0.8]])
PAIR_IDS = torch.tensor([0, 0, 1, 1])


def circle_anchor(s_p: float, negatives: list[float], m: float, gamma: float) -> float:
    # a_p = relu(1 + m - s_p), logit_p = -gamma a_p (s_p - (1 - m));
    # a_n = relu(s_n + m),     logit_n = gamma a_n (s_n - m)
    logit_p = -gamma * max(0.0, 1 + m - s_p) * (s_p - (1 - m))
    logits_n = [gamma * max(0.0, s + m) * (s - m) for s in negatives]
    return softplus(logit_p + lse(*logits_n))


def test_circle_hand_value():
    m, gamma = 0.25, 2.0
    # anchor a: s_p = 0.6, negatives (0, -0.6): a_n = (0.25, 0) -> logits_n (-0.125, 0)
    #   a_p = 0.65, logit_p = -2 * 0.65 * (0.6 - 0.75) = 0.195
    a = softplus(0.195 + lse(-0.125, 0.0))
    assert a == pytest.approx(circle_anchor(0.6, [0.0, -0.6], m, gamma))
    # anchor b: s_p 0.6, negatives (0.8, 0.28); c: s_p 0.8, negatives (0, 0.8);
    # d: s_p 0.8, negatives (-0.6, 0.28)
    expected = (a + circle_anchor(0.6, [0.8, 0.28], m, gamma)
                + circle_anchor(0.8, [0.0, 0.8], m, gamma)
                + circle_anchor(0.8, [-0.6, 0.28], m, gamma)) / 4
    # circle loss normalises: scaling a vector changes nothing
    scaled = UNIT * torch.tensor([[2.0], [0.5], [3.0], [1.0]])
    value = circle_loss(scaled, PAIR_IDS, margin=m, gamma=gamma)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_circle_singletons_and_one_identity():
    # id 2's only image has no positive: left out of the mean (PML's reduction)
    feats = torch.cat([UNIT, torch.tensor([[0.8, 0.6]])]).requires_grad_()
    value = circle_loss(feats, torch.tensor([0, 0, 1, 1, 2]), 0.25, 2.0)
    lone = circle_loss(UNIT, PAIR_IDS, 0.25, 2.0)
    assert value.item() != pytest.approx(lone.item())  # (0.8, 0.6) is a negative for all
    value.backward()
    assert torch.isfinite(feats.grad).all()
    one = torch.randn(4, 3, requires_grad=True)
    value = circle_loss(one, torch.zeros(4, dtype=torch.long))
    assert value.item() == 0.0
    value.backward()
    assert torch.equal(one.grad, torch.zeros_like(one))


@pytest.mark.parametrize(("m", "gamma"), [(0.25, 128.0), (0.4, 80.0)])
def test_circle_equals_pytorch_metric_learning(m, gamma):
    from pytorch_metric_learning.losses import CircleLoss

    for seed in range(3):
        feats, ids = random_batch(seed)
        expected = CircleLoss(m=m, gamma=gamma)(feats, ids).item()
        assert circle_loss(feats, ids, m, gamma).item() == pytest.approx(expected, rel=1e-5)


# --- ArcFace / CosFace ------------------------------------------------------------------

# class weights e0 = (1, 0), e1 = (0, 1) (any length: they are normalised)
def head(cls, scale: float, margin: float):
    loss = cls(num_classes=2, feature_dim=2, scale=scale, margin=margin)
    with torch.no_grad():
        loss.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 0.5]]))
    return loss


def test_cosface_hand_value():
    # x = (0.6, 0.8) of class 0: cosines (0.6, 0.8); s = 2, m = 0.4
    # logits (2 (0.6 - 0.4), 2 * 0.8) = (0.4, 1.6): CE = log(1 + e^(1.6 - 0.4))
    loss = head(CosFaceLoss, 2.0, 0.4)
    value = loss({"neck_features": torch.tensor([[6.0, 8.0]])}, {"pids": [0]})
    assert value.item() == pytest.approx(math.log1p(math.exp(1.2)), rel=1e-6)


def test_arcface_hand_values():
    loss = head(ArcFaceLoss, 2.0, 0.5)
    # theta = acos 0.6: cos(theta + 0.5) = 0.6 cos 0.5 - 0.8 sin 0.5 = 0.143009
    target = 0.6 * math.cos(0.5) - 0.8 * math.sin(0.5)
    assert target == pytest.approx(0.143009, abs=1e-6)
    value = loss({"neck_features": torch.tensor([[0.6, 0.8]])}, {"pids": [0]})
    assert value.item() == pytest.approx(math.log1p(math.exp(2 * (0.8 - target))), rel=1e-5)
    # x = (-0.96, 0.28): theta = acos(-0.96) = 2.858 > pi - 0.5 = 2.642, so the target logit
    # is cos(theta) - m sin m = -0.96 - 0.5 sin 0.5 = -1.199713 (kept decreasing)
    target = -0.96 - 0.5 * math.sin(0.5)
    value = loss({"neck_features": torch.tensor([[-0.96, 0.28]])}, {"pids": [0]})
    assert value.item() == pytest.approx(math.log1p(math.exp(2 * (0.28 - target))), rel=1e-5)


@pytest.mark.parametrize("name", ["arcface", "cosface"])
def test_heads_equal_pytorch_metric_learning(name):
    from pytorch_metric_learning.losses import ArcFaceLoss as PmlArcFace
    from pytorch_metric_learning.losses import CosFaceLoss as PmlCosFace

    feats, ids = random_batch(1, ids=5, instances=4, dim=16)
    if name == "arcface":
        ours = build_arcface(ArcFaceConfig(), num_classes=7, feature_dim=16)
        reference = PmlArcFace(7, 16, margin=math.degrees(0.5), scale=64.0)
    else:
        ours = build_cosface(CosFaceConfig(), num_classes=7, feature_dim=16)
        reference = PmlCosFace(7, 16, margin=0.4, scale=64.0)
    assert ours.weight.shape == (7, 16)
    reference.W.data = ours.weight.detach().t().clone()
    expected = reference(feats, ids).item()
    value = ours({"neck_features": feats}, {"pids": ids})
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert ours.weight.grad is not None and torch.isfinite(ours.weight.grad).all()


# --- weighted regularised triplet -------------------------------------------------------

# Points (Euclidean): id 0 at p0 = (0, 0), p1 = (1, 0); id 1 at p2 = (3, 0), p3 = (3, 1).
POINTS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.0, 1.0]])


def weighted(distances: list[float], sign: float) -> float:
    # softmax(sign * d)-weighted mean of the distances
    weights = [math.exp(sign * d) for d in distances]
    return sum(w * d for w, d in zip(weights, distances, strict=True)) / sum(weights)


def wrt_gaps() -> list[float]:
    # positives include the anchor itself at distance 0 (AGW's code; it is 1e-6 here)
    s10, s5 = math.sqrt(10), math.sqrt(5)
    rows = [([0.0, 1.0], [3.0, s10]),   # p0: positive p1 at 1; negatives p2 3, p3 sqrt 10
            ([0.0, 1.0], [2.0, s5]),    # p1: negatives p2 2, p3 sqrt 5
            ([0.0, 1.0], [3.0, 2.0]),   # p2: negatives p0 3, p1 2
            ([0.0, 1.0], [s10, s5])]    # p3: negatives p0 sqrt 10, p1 sqrt 5
    return [weighted(pos, 1.0) - weighted(neg, -1.0) for pos, neg in rows]


def test_weighted_triplet_hand_values():
    gaps = wrt_gaps()
    # every positive part is e / (1 + e) = 0.731059 (distances 0 and 1)
    assert weighted([0.0, 1.0], 1.0) == pytest.approx(math.e / (1 + math.e))
    soft = sum(softplus(g) for g in gaps) / 4
    assert weighted_regularized_triplet(POINTS, PAIR_IDS).item() == pytest.approx(soft, rel=1e-5)
    hinge = sum(max(0.0, g + 1.5) for g in gaps) / 4
    value = weighted_regularized_triplet(POINTS, PAIR_IDS, margin=1.5)
    assert value.item() == pytest.approx(hinge, rel=1e-5)


def test_weighted_triplet_one_identity_and_gradient():
    feats = torch.randn(4, 3, requires_grad=True)
    value = weighted_regularized_triplet(feats, torch.zeros(4, dtype=torch.long))
    assert value.item() == 0.0
    value.backward()
    assert torch.equal(feats.grad, torch.zeros_like(feats))
    feats, ids = random_batch(2)
    feats.requires_grad_()
    weighted_regularized_triplet(feats, ids, normalize=True).backward()
    assert torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0


# --- the soft-margin triplet is the existing `triplet` ----------------------------------


@pytest.mark.parametrize(("margin", "soft", "normalize"),
                         [(0.0, True, False), (0.3, False, False), (0.3, False, True)])
def test_batch_hard_triplet_equals_pytorch_metric_learning(margin, soft, normalize):
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.miners import BatchHardMiner

    distance = LpDistance(normalize_embeddings=normalize)
    reference = TripletMarginLoss(margin=margin, smooth_loss=soft, distance=distance)
    miner = BatchHardMiner(distance=distance)
    for seed in range(3):
        feats, ids = random_batch(seed)
        expected = reference(feats, ids, miner(feats, ids)).item()
        value = batch_hard_triplet(feats, ids, margin, soft_margin=soft, normalize=normalize)
        assert value.item() == pytest.approx(expected, rel=1e-5)

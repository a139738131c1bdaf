"""Flipping and soft-margin triplet losses on inputs whose values are derived by hand."""

import math

import pytest
import torch

from reid_plugin_flipreid.losses import cross_entropy, flipping_loss, soft_margin_triplet


def constructed(batch, dims=(2048, 1024, 1024)):
    """B.8.3: global 0.2 vs 0.4, stripe 1 0.5 vs 0.5, stripe 2 0 vs 1."""
    g, r1, r2 = dims
    original = [torch.full((batch, g), 0.2), torch.full((batch, r1), 0.5), torch.zeros(batch, r2)]
    flipped = [torch.full((batch, g), 0.4), torch.full((batch, r1), 0.5), torch.ones(batch, r2)]
    return original, flipped


@pytest.mark.parametrize("batch,dims", [(4, (2048, 1024, 1024)), (1, (6, 3, 3)), (7, (5, 2, 9))])
def test_flipping_loss_value(batch, dims):
    """(0.2 - 0.4)^2 + 0 + (0 - 1)^2 = 0.04 + 1.0 = 1.04, whatever the batch and dims."""
    original, flipped = constructed(batch, dims)
    assert float(flipping_loss(original, flipped)) == pytest.approx(1.04, abs=1e-6)


def test_flipping_loss_component(registry):
    spec = registry.get("loss", "flipping")
    loss = spec.create()
    original, flipped = constructed(3)
    outputs = {"features_original": original, "features_flipped": flipped}
    assert float(loss(outputs, {"pids": torch.arange(3)})) == pytest.approx(1.04, abs=1e-6)
    # one tensor works too: a method with a single embedding can use the loss
    single = {"features_original": original[0], "features_flipped": flipped[0]}
    assert float(loss(single, {})) == pytest.approx(0.04, abs=1e-6)
    # and the per-embedding terms add up to the total (how the flipreid method applies it)
    parts = [loss({"features_original": a, "features_flipped": b}, {})
             for a, b in zip(original, flipped, strict=True)]
    assert float(sum(parts)) == pytest.approx(1.04, abs=1e-6)


def test_flipping_loss_gradient():
    """d/da mean((a - b)^2) = 2 (a - b) / (B * D)."""
    a = torch.tensor([[0.2, 0.6]], requires_grad=True)
    b = torch.tensor([[0.4, 0.6]])
    flipping_loss(a, b).backward()
    assert torch.allclose(a.grad, torch.tensor([[2 * -0.2 / 2, 0.0]]))


def test_flipping_loss_errors(registry):
    loss = registry.get("loss", "flipping").create()
    with pytest.raises(KeyError, match="features_flipped"):
        loss({"features_original": torch.zeros(2, 3)}, {})
    with pytest.raises(ValueError, match="as many"):
        flipping_loss([torch.zeros(2, 3)], [torch.zeros(2, 3)] * 2)


def test_soft_margin_batch_hard_triplet(registry):
    """B.8.5: (0,0), (1,0) id 0 and (3,0), (3,1) id 1. Hardest positive / negative per anchor:
    (0,0): 1 / 3; (1,0): 1 / 2; (3,0): 1 / 2; (3,1): 1 / sqrt(5). The loss is the mean of
    softplus(d_ap - d_an) = [ln(1+e^-2) + 2 ln(1+e^-1) + ln(1+e^(1-sqrt 5))] / 4 = 0.25212."""
    features = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.0, 1.0]])
    batch = {"pids": torch.tensor([0, 0, 1, 1])}
    expected = (math.log1p(math.exp(-2)) + 2 * math.log1p(math.exp(-1))
                + math.log1p(math.exp(1 - math.sqrt(5)))) / 4
    assert expected == pytest.approx(0.25212, abs=1e-5)
    loss = soft_margin_triplet(registry)
    assert float(loss({"features": features}, batch)) == pytest.approx(expected, abs=1e-5)


def test_cross_entropy_is_not_smoothed(registry):
    """Uniform logits over 4 classes: CE = ln 4 with or without smoothing; logits (0, ln 3)
    for 2 classes with label 1: p = 3/4, unsmoothed CE = ln(4/3)."""
    loss = cross_entropy(registry)
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert float(loss({"logits": logits}, {"pids": torch.tensor([1])})) == pytest.approx(
        math.log(4 / 3), abs=1e-6)

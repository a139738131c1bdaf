"""ARN's losses against the hand-derived values of the method notes (B.6 3-5)."""

import math

import pytest
import torch
from reidcore.api import ReidError

from reid_plugin_arn.losses import contrastive, difference, mmd, reconstruction_l1


def test_reconstruction_is_the_channel_count_for_a_unit_error():
    # sum |0 - 1| = 2*3*256*128, divided by B*H*W = 2*256*128: 3 (the channels)
    x = torch.ones(2, 3, 256, 128)
    assert reconstruction_l1(torch.zeros_like(x), x).item() == pytest.approx(3.0)


def test_reconstruction_component_reads_its_keys(registry):
    loss = registry.get("loss", "arn_reconstruction").create()
    x = torch.ones(2, 3, 8, 4)
    assert loss({"reconstruction": torch.zeros_like(x)}, {"images": x}).item() == 3.0
    with pytest.raises(ReidError, match="shape"):
        reconstruction_l1(torch.zeros(2, 3, 8, 8), x)


def test_difference_dot_is_the_raw_batch_sum():
    # two rows: <0.5*1, 0.1*1> over 2048 dims = 0.05 * 2048 = 102.4 each, 204.8 in all
    shared, private = torch.full((2, 2048), 0.5), torch.full((2, 2048), 0.1)
    assert difference(shared, private).item() == pytest.approx(204.8, rel=1e-6)


def test_difference_frobenius_is_the_squared_norm_of_the_cross_correlation():
    # C = [[1, 0], [0, 1]], P = [[1, 2], [3, 4]]: C^T P = P, ||P||_F^2 = 1 + 4 + 9 + 16 = 30
    shared = torch.eye(2)
    private = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert difference(shared, private, "frobenius").item() == pytest.approx(30.0)
    # the dot form pairs row i with row i only: orthogonal rows give 0
    assert difference(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])).item() == 0.0


def test_difference_dsn_is_the_mean_squared_correlation_of_centred_unit_features():
    # C = [[1, 0], [-1, 0]] (already centred and unit); P = [[2, 0], [0, 0]] centres to
    # [[1, 0], [-1, 0]]: C^T P = [[2, 0], [0, 0]], mean of squares over 4 entries = 1.0
    shared = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    private = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    assert difference(shared, private, "dsn").item() == pytest.approx(1.0)
    # D = 1, B = 3: rows normalise to their signs, C = (1, 0, -1), P = (1, -1, 1): 1 - 1 = 0
    c, p = torch.tensor([[2.0], [0.0], [-2.0]]), torch.tensor([[3.0], [-3.0], [3.0]])
    assert difference(c, p, "dsn").item() == pytest.approx(0.0, abs=1e-12)


def test_only_the_dot_form_falls_when_the_shared_feature_shrinks():
    # why the code's form collapses the shared feature: shrinking it 10x lowers the dot
    # product 10x; the normalised form does not move (and ignores an offset too)
    g = torch.Generator().manual_seed(0)
    shared, private = torch.rand(6, 5, generator=g), torch.rand(6, 5, generator=g)
    assert difference(0.1 * shared, private).item() == pytest.approx(
        0.1 * difference(shared, private).item(), rel=1e-5)
    dsn = difference(shared, private, "dsn").item()
    assert difference(0.1 * shared, 3 * private + 1, "dsn").item() == pytest.approx(dsn, rel=1e-5)
    assert 0 < dsn <= 6 ** 2 / 5 ** 2  # at most B^2 / D^2


def test_mmd_zeros_against_ones():
    # ||a - b||^2 = 2 for every cross pair, 0 within: MMD^2 = 3 + 3 - 2 (e^-1 + e^-0.25
    # + e^-0.01) = 1.726540, loss = sqrt = 1.313979
    x, y = torch.zeros(4, 2), torch.ones(4, 2)
    expected2 = 6 - 2 * (math.exp(-1) + math.exp(-0.25) + math.exp(-0.01))
    assert expected2 == pytest.approx(1.726540, abs=1e-6)
    assert mmd(x, y).item() == pytest.approx(1.313979, abs=1e-6)
    assert mmd(x, y, root=False).item() == pytest.approx(1.726540, abs=1e-6)


def test_mmd_two_point_sets():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    assert mmd(x, y, root=False).item() == pytest.approx(1.516294, abs=1e-6)
    assert mmd(x, y).item() == pytest.approx(1.231379, abs=1e-6)


def test_mmd_is_zero_with_a_zero_gradient_at_equal_sets():
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0)).requires_grad_()
    y = x.detach().clone().requires_grad_()
    value = mmd(x, y)
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(x.grad, torch.zeros_like(x)) and torch.equal(y.grad, torch.zeros_like(y))


def test_contrastive_hinge_values():
    # pairs (0,1) same: d = 4/4 = 1; (0,2) and (1,2) different: d = 1, relu(2 - 1) = 1;
    # sum 3, times 2 / (3 * 2) = 1.0
    f = torch.tensor([[0.0, 0, 0, 0], [1, 1, 1, 1], [2, 0, 0, 0]])
    assert contrastive(f, torch.tensor([0, 0, 1])).item() == pytest.approx(1.0)
    # two identical features, different labels: relu(2 - 0) = 2, times 2 / 2 = 2.0
    g = torch.ones(2, 4)
    assert contrastive(g, torch.tensor([0, 1])).item() == pytest.approx(2.0)


def test_contrastive_squared_hinge():
    # identical features, different labels: relu(2 - 0)^2 = 4, times 2 / 2 = 4.0;
    # the first example: 1 + 1 + 1 (relu(1)^2 = 1) -> still 1.0
    assert contrastive(torch.ones(2, 4), torch.tensor([0, 1]), squared=True).item() == 4.0
    f = torch.tensor([[0.0, 0, 0, 0], [1, 1, 1, 1], [2, 0, 0, 0]])
    assert contrastive(f, torch.tensor([0, 0, 1]), 2.0, True).item() == pytest.approx(1.0)
    # margin 3: different pairs give (3 - 1)^2 = 4 each: (1 + 4 + 4) * 2 / 6 = 3.0
    assert contrastive(f, torch.tensor([0, 0, 1]), 3.0, True).item() == pytest.approx(3.0)


def test_components_build_from_options(registry):
    dif = registry.get("loss", "arn_difference").create(
        registry.get("loss", "arn_difference").config(form="frobenius"))
    out = dif({"shared": torch.eye(2), "private": torch.tensor([[1.0, 2.0], [3.0, 4.0]])}, {})
    assert out.item() == pytest.approx(30.0)
    ctr = registry.get("loss", "arn_contrastive").create()
    assert ctr({"features": torch.ones(2, 4)}, {"pids": torch.tensor([0, 1])}).item() == 2.0
    mmd_loss = registry.get("loss", "mmd").create()
    value = mmd_loss({"target_features": torch.zeros(4, 2), "source_features": torch.ones(4, 2)},
                     {})
    assert value.item() == pytest.approx(1.313979, abs=1e-6)
    with pytest.raises(ReidError, match="source_features"):
        mmd_loss({"target_features": torch.zeros(4, 2)}, {})


def test_plain_cross_entropy_has_no_smoothing(registry):
    # the method's CE: the core's cross_entropy with label_smoothing = 0 -> -log softmax
    spec = registry.get("loss", "cross_entropy")
    ce = spec.create(spec.config(label_smoothing=0.0))
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = (1/4, 3/4)
    assert ce({"logits": logits}, {"pids": torch.tensor([1])}).item() == pytest.approx(
        -math.log(0.75))

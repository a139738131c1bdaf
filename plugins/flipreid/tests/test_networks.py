"""Shapes and parameter counts of the paper-size network (meta device), GeM values, stripes,
and the frozen-backbone behaviour on a tiny real forward."""

import pytest
import torch

from reid_plugin_flipreid.networks import (
    ClippedGeM,
    FlipReIDNetwork,
    build_backbone,
    build_network,
    stripe_bounds,
)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_network(name, registry, num_classes=751):
    with torch.device("meta"):
        return build_network(build_backbone(name, registry=registry), num_classes)


# Regional conv: 3x3, 2048 -> 1024 with bias = 2048*1024*9 + 1024 = 18,875,392 each.
REGIONAL_CONVS = 2 * (2048 * 1024 * 9 + 1024)
# Heads: BN affine 2*(2048+1024+1024) = 8,192 + bias-free dense 4096*751 = 3,076,096.
HEADS = 2 * 4096 + 4096 * 751


@pytest.mark.parametrize("name", ["resnet50", "resnet50_ibn_a"])
def test_paper_size_parameter_counts(name, registry):
    """The counts of the notes (B.8.2); IBN-a has the same count as the plain ResNet-50."""
    net = meta_network(name, registry)
    assert count(net.trunk) == 8_543_296
    assert count(net.global_stage4) == count(net.regional_stage4) == 14_964_736
    assert count(net.regional_convs) == REGIONAL_CONVS == 37_750_784
    assert sum(p.numel() for p in net.gem_exponents()) == 3
    assert count(net.heads) == HEADS == 3_084_288
    assert count(net) - count(net.heads) == 76_223_555  # the inference model
    assert count(net) == 79_307_843


@pytest.mark.parametrize("name", ["resnet50", "resnet50_ibn_a", "resnest50"])
def test_paper_size_shapes(name, registry):
    """B.8.1: 384x128 -> trunk 1024x24x8 -> stage 4 2048x24x8 (last stride 1) -> stripes
    2048x12x8 -> conv 1024x12x8 -> embeddings 2048, 1024, 1024 (4096 at inference)."""
    net = meta_network(name, registry)
    images = torch.empty(2, 3, 384, 128, device="meta")
    shared = net.trunk(images)
    assert tuple(shared.shape) == (2, 1024, 24, 8)
    assert tuple(net.global_stage4(shared).shape) == (2, 2048, 24, 8)
    regional = net.regional_stage4(shared)
    assert tuple(regional.shape) == (2, 2048, 24, 8)
    assert stripe_bounds(24, 2) == [(0, 12), (12, 24)]
    assert tuple(net.regional_convs[0](regional[:, :, :12]).shape) == (2, 1024, 12, 8)
    assert [tuple(e.shape) for e in net.embeddings(images)] == [(2, 2048), (2, 1024), (2, 1024)]
    assert net.feature_dim == 4096
    logits = net.classify(net.embeddings(images))
    assert [tuple(x.shape) for x in logits] == [(2, 751)] * 3
    # the new layers do not depend on the backbone
    assert count(net.regional_convs) == REGIONAL_CONVS and count(net.heads) == HEADS


def test_stage4_copies_start_equal_but_are_separate(registry):
    torch.manual_seed(0)
    backbone = build_backbone("resnet50_ibn_a", registry=registry)
    net = build_network(backbone, 5)
    a = dict(net.global_stage4.named_parameters())
    b = dict(net.regional_stage4.named_parameters())
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]) and a[key].data_ptr() != b[key].data_ptr()


def test_stripes_last_takes_the_remainder():
    assert stripe_bounds(7, 2) == [(0, 3), (3, 7)]
    assert stripe_bounds(12, 3) == [(0, 4), (4, 8), (8, 12)]
    with pytest.raises(ValueError):
        stripe_bounds(1, 2)


def test_gem_values():
    """B.8.4: on the 2x2 map {1, 2, 3, 4}, p = 1 gives the mean 2.5 and p = 3 gives
    ((1 + 8 + 27 + 64) / 4)^(1/3) = 25^(1/3) = 2.92402. Scaled by 1/10 the values stay
    below 1, so the clipped GeM gives 0.25 and 0.292402; a map above 1 is clipped to 1."""
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    torch.set_grad_enabled(False)
    try:
        check_gem_values(x)
    finally:
        torch.set_grad_enabled(True)


def check_gem_values(x):
    gem = ClippedGeM(p=1.0, clip=False)
    assert gem.p.requires_grad and float(gem.p.detach()) == 1.0
    assert float(gem(x)) == pytest.approx(2.5, abs=1e-6)
    assert float(ClippedGeM(p=3.0, clip=False)(x)) == pytest.approx(2.92402, abs=1e-5)
    assert float(ClippedGeM(p=1.0)(x / 10)) == pytest.approx(0.25, abs=1e-6)
    assert float(ClippedGeM(p=3.0)(x / 10)) == pytest.approx(0.292402, abs=1e-6)
    assert float(ClippedGeM(p=3.0)(x)) == 1.0
    # negative activations are raised to 1e-6 first: GeM of zeros is ~1e-6, not NaN
    assert float(ClippedGeM(p=1.0)(-x)) == pytest.approx(1e-6, rel=1e-3)


def test_gem_exponent_is_trained():
    gem = ClippedGeM(p=1.0)
    x = torch.tensor([[0.1, 0.2], [0.3, 0.4]]).view(1, 1, 2, 2)
    gem(x).sum().backward()
    # d/dp of (mean x^p)^(1/p) at p=1 is mean(x ln x) / 1 - mean(x) ln(mean x) (Jensen gap > 0)
    xs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    expected = (xs * xs.log()).mean() - xs.mean() * xs.mean().log()
    assert float(gem.p.grad) == pytest.approx(float(expected), rel=1e-4)
    assert float(expected) > 0


def test_tiny_forward_frozen_backbone(registry):
    """A real forward at 64x32: embeddings lie in [0, 1]; a frozen backbone gets no
    gradient and keeps its BatchNorm statistics even in train mode."""
    torch.manual_seed(0)
    net = build_network(build_backbone("resnet50_ibn_a", registry=registry), num_classes=6)
    assert isinstance(net, FlipReIDNetwork)
    images = torch.randn(4, 3, 64, 32)
    net.freeze_backbone(True)
    net.train()
    bn = net.trunk.bn1
    before = bn.running_mean.clone()
    embeddings = net.embeddings(images)
    assert [tuple(e.shape) for e in embeddings] == [(4, 2048), (4, 1024), (4, 1024)]
    assert all(0.0 <= float(e.detach().min()) <= float(e.detach().max()) <= 1.0 for e in embeddings)
    sum(logits.sum() for logits in net.classify(embeddings)).backward()
    assert torch.equal(bn.running_mean, before) and not bn.training
    assert all(p.grad is None for m in net.backbone_modules() for p in m.parameters())
    assert net.regional_convs[0][0].weight.grad is not None
    assert net.heads[0].bn.training
    net.freeze_backbone(False)
    assert bn.training and all(p.requires_grad for p in net.trunk.parameters())


def test_not_a_resnet_is_refused():
    with pytest.raises(ValueError, match="layer1..layer4"):
        FlipReIDNetwork(torch.nn.Conv2d(3, 8, 3), 8, 4)

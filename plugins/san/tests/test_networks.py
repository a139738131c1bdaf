"""SA-Enc and SA-Dec against the notes (C.1, C.2, C.8): shapes at 256x128, parameter
counts, initialisation, and the errors for encoders the decoder cannot read."""

import math

import pytest
import torch

from reid_plugin_san.config import SADecoderConfig
from reid_plugin_san.networks import SADecoder, SAEncoder, resnet_trunk, stage_maps


def resnet50(last_stride=1):
    from reidcore.api import Kind
    from reidcore.testing import installed_plugins

    spec = installed_plugins().registry.get(Kind.BACKBONE, "timm")
    return spec.create(spec.config(model="resnet50", last_stride=last_stride))


@pytest.fixture(scope="module")
def paper_networks():
    with torch.device("meta"):  # shapes and counts without memory or time
        return SAEncoder(resnet50(), num_classes=767), SADecoder()


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts(paper_networks):
    encoder, decoder = paper_networks
    assert count(decoder) == 9_071_075
    # ResNet-50 trunk 23,508,032 + fc 2048*512+512 + BN 2*512
    assert count(encoder) - count(encoder.classifier) == 23_508_032 + 1_049_088 + 1_024
    assert count(encoder) - count(encoder.classifier) == 24_558_144
    assert count(encoder.classifier) == 512 * 767 + 767 == 393_471
    assert count(encoder) == 24_951_615


def test_shapes_at_256x128(paper_networks):
    encoder, decoder = paper_networks
    images = torch.empty(4, 3, 256, 128, device="meta")
    encoder.train()
    out = encoder(images)
    assert [tuple(m.shape) for m in out["maps"]] == [
        (4, 256, 64, 32), (4, 512, 32, 16), (4, 1024, 16, 8), (4, 2048, 16, 8)]
    assert tuple(out["features"].shape) == (4, 512)
    assert tuple(out["logits"].shape) == (4, 767)
    decoded = decoder(*out["maps"])
    assert [tuple(s.shape) for s in decoded["maps"]] == [
        (4, 256, 32, 16), (4, 64, 64, 32), (4, 32, 128, 64), (4, 16, 256, 128)]
    assert tuple(decoded["texture"].shape) == (4, 3, 256, 256)  # width doubled
    assert tuple(decoder(*out["maps"], size=(64, 64))["texture"].shape) == (4, 3, 64, 64)
    encoder.eval()
    assert tuple(encoder(images).shape) == (4, 512)  # v at inference


def test_real_forward_matches_the_stage_layout():
    """A real (not meta) pass through the trunk: v is post-ReLU (>= 0), finite."""
    torch.manual_seed(0)
    from conftest import tiny_resnet

    encoder = SAEncoder(tiny_resnet(), num_classes=5, embedding_dim=8).train()
    out = encoder(torch.randn(4, 3, 64, 32))
    assert [tuple(m.shape[-2:]) for m in out["maps"]] == [(16, 8), (8, 4), (4, 2), (4, 2)]
    assert bool((out["features"] >= 0).all()) and torch.isfinite(out["logits"]).all()


@torch.no_grad()
def test_decoder_initialisation():
    torch.manual_seed(0)
    decoder = SADecoder()
    conv = decoder.reduce[0]  # 1x1, 2048 -> 512: xavier std = gain * sqrt(2 / (fan_in + fan_out))
    expected = 0.02 * math.sqrt(2.0 / (2048 + 512))
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.02)
    assert float(conv.bias.abs().max()) == 0.0
    bns = [m for m in decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    weights = torch.cat([bn.weight for bn in bns])
    assert weights.mean().item() == pytest.approx(1.0, abs=0.003)
    assert weights.std().item() == pytest.approx(0.02, rel=0.1)
    assert all(float(bn.bias.abs().max()) == 0.0 for bn in bns)
    assert decoder.final[1].bias is not None and decoder.up1.res.body[0].bias is None


@torch.no_grad()
def test_encoder_head_initialisation():
    torch.manual_seed(0)
    from conftest import tiny_resnet

    encoder = SAEncoder(tiny_resnet(), num_classes=600, embedding_dim=512)
    assert encoder.fc[0].weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert encoder.classifier.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert float(encoder.fc[0].bias.abs().max()) == 0.0
    assert float(encoder.fc[1].weight.min()) == 1.0 and float(encoder.fc[1].bias.abs().max()) == 0


def test_decoder_needs_last_stride_one():
    from reidcore.api import ReidError

    with torch.device("meta"):
        trunk = resnet_trunk(resnet50(last_stride=2))
        maps = stage_maps(trunk, torch.empty(1, 3, 64, 32))
        with pytest.raises(ReidError, match="last_stride = 1"):
            SADecoder(SADecoderConfig())(*maps)


def test_encoder_rejects_a_backbone_without_stages():
    from reidcore.api import ReidError

    with pytest.raises(ReidError, match="ResNet-style backbone.*layer1"):
        SAEncoder(torch.nn.Conv2d(3, 8, 3), num_classes=3)

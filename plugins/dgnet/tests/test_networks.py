"""Shapes and parameter counts of the paper-size networks, against the notes' numbers
(derived layer by layer in the comments), and the decoder's code-to-AdaIN routing."""

import pytest
import torch

from reid_plugin_dgnet.config import DecoderConfig, DiscriminatorConfig, StructureEncoderConfig
from reid_plugin_dgnet.networks import (
    AppearanceEncoder,
    ClassBlock,
    Decoder,
    MultiScaleDiscriminator,
    StructureEncoder,
    to_gray,
)


def count(module):
    return sum(p.numel() for p in module.parameters())


def conv(cin, cout, k):
    return cin * cout * k * k + cout


def test_structure_encoder_count_is_380544():
    stem = conv(1, 16, 3) + conv(16, 32, 3) + conv(32, 32, 3) + conv(32, 64, 3)  # 32,544
    res = 4 * 2 * conv(64, 64, 3)                                                  # 295,424
    aspp = conv(64, 32, 1) + 3 * (conv(64, 32, 1) + conv(32, 32, 3)) + conv(128, 128, 1)
    assert stem + res + aspp == 380_544
    assert count(StructureEncoder(StructureEncoderConfig())) == 380_544


def test_decoder_counts():
    decoder = Decoder(DecoderConfig())
    convs = (8 * conv(128, 128, 3) + conv(128, 64, 5) + 2 * 64 + conv(64, 32, 5) + 2 * 32
             + 2 * conv(32, 32, 3) + conv(32, 3, 1))
    assert convs == 1_455_555
    mlp = (2048 * 512 + 512) + (512 * 512 + 512) + (512 * 256 + 256)
    assert mlp == 1_443_072
    assert count(decoder.res) + count(decoder.up) == 1_455_555
    assert count(decoder.mlp_w) + count(decoder.mlp_b) == 8 * mlp == 11_544_576
    generator = count(decoder) + count(StructureEncoder(StructureEncoderConfig()))
    assert generator == 13_380_675
    assert len(decoder.adain) == 8


def test_discriminator_count_is_1025571():
    scale = (conv(3, 32, 1) + 3 * conv(32, 32, 3) + conv(32, 64, 3) + 8 * conv(64, 64, 3)
             + conv(64, 1, 1))
    assert scale == 341_857
    d = MultiScaleDiscriminator(DiscriminatorConfig())
    assert [count(s) for s in d.scales] == [341_857] * 3
    assert count(d) == 1_025_571


def test_class_block_count_and_init():
    head = ClassBlock(2048, 751, 0.5)
    assert count(head) == (2048 * 512 + 512) + 2 * 512 + (512 * 751 + 751) == 1_435_375
    assert head.classifier.bias.abs().sum() == 0
    assert head.classifier.weight.std().item() == pytest.approx(0.001, rel=0.05)


def test_paper_size_ea_count_with_resnet50():
    timm = pytest.importorskip("timm")
    trunk = timm.create_model("resnet50", pretrained=False, num_classes=0, global_pool="")
    trunk.feature_dim = 2048
    ea = AppearanceEncoder(trunk, 751)
    assert count(trunk) == 23_508_032
    assert count(ea) == 23_508_032 + 2 * 1_435_375 == 26_378_782
    assert ea.code_dim == 8192 and ea.feature_dim == 1024


def test_shapes_at_256x128_on_the_meta_device():
    with torch.device("meta"):
        es = StructureEncoder(StructureEncoderConfig())
        decoder = Decoder(DecoderConfig())
        d = MultiScaleDiscriminator(DiscriminatorConfig())
        x = torch.randn(2, 3, 256, 128)
        s = es(to_gray(x))
        y = decoder(s, torch.randn(2, 8192))
        outs = d(y)
    assert tuple(s.shape) == (2, 128, 64, 32)
    assert tuple(y.shape) == (2, 3, 256, 128)
    assert [tuple(o.shape) for o in outs] == [(2, 1, 64, 32), (2, 1, 32, 16), (2, 1, 16, 8)]


def test_appearance_code_is_channel_major_stripes_and_detached():
    from conftest import tiny_trunk

    ea = AppearanceEncoder(tiny_trunk(), 5)
    x = torch.randn(2, 3, 64, 32)
    code, primary, fine = ea(x)
    maps = ea.trunk.forward_features(x)
    stripes = torch.nn.functional.adaptive_max_pool2d(maps, (4, 1))[:, :, :, 0]  # B x C x 4
    assert torch.allclose(code, stripes.reshape(2, -1))  # index = 4 * c + stripe
    assert code[0, 4 * 3 + 2] == stripes[0, 3, 2]
    assert not code.requires_grad and primary.shape == fine.shape == (2, 5)


def test_chunk_k_of_the_code_drives_residual_block_k_only():
    torch.manual_seed(0)
    decoder = Decoder(DecoderConfig(dim=16, code_dim=64, mlp_dim=8))
    code = torch.randn(1, 64, requires_grad=True)
    scales, biases = decoder.adain_parameters(code)
    assert scales.shape == biases.shape == (1, 4 * 2 * 16)
    # AdaIN layers 2 and 3 (block 1) read slice [32, 64): only chunk 1 (code[16:32]) moves it
    (grad,) = torch.autograd.grad(scales[0, 32:64].sum(), code)
    assert grad[0, 16:32].abs().sum() > 0
    assert grad[0, :16].abs().sum() == 0 and grad[0, 32:].abs().sum() == 0


def test_adain_scale_has_no_plus_one():
    from reid_plugin_dgnet.blocks import AdaIN

    layer = AdaIN(2)
    layer.weight = torch.zeros(1, 2)
    layer.bias = torch.tensor([[3.0, -1.0]])
    out = layer(torch.randn(1, 2, 4, 4))
    assert torch.allclose(out[0, 0], torch.full((4, 4), 3.0))
    assert torch.allclose(out[0, 1], torch.full((4, 4), -1.0))


def test_layer_norm_uses_unbiased_std_over_chw():
    from reid_plugin_dgnet.blocks import LayerNorm

    norm = LayerNorm(1, eps=0.0)
    norm.gamma.data.fill_(1.0)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    # mean 2.5, unbiased std sqrt(5/3)
    expected = (x - 2.5) / (5 / 3) ** 0.5
    assert torch.allclose(norm(x), expected)


def test_aspp_dilation_too_wide_is_a_clear_error():
    from reidcore.api import ReidError

    es = StructureEncoder(StructureEncoderConfig(dim=4))
    with pytest.raises(ReidError, match="generators.structure.dilations"):
        es(torch.randn(1, 1, 64, 32))

"""Parameter counts (meta device) and shapes of the networks, against the method notes
(design/methods/cut-reid.md, A.10 checks 1 and 2; the counts are re-derived by hand in
the comments)."""

import pytest
import torch

from reid_plugin_cut_reid.config import PatchDiscriminatorConfig, ResnetGeneratorConfig
from reid_plugin_cut_reid.networks import (
    BlurPool,
    BlurUpsample,
    PatchDiscriminator,
    PatchHeads,
    ReidBranch,
    ResnetGenerator,
)


def count(module):
    return sum(p.numel() for p in module.parameters())


def on_meta(factory):
    with torch.device("meta"):
        return factory()


# --- parameter counts (paper size, meta device) --------------------------------------------

def test_synth_reid_generator_parameters():
    g = on_meta(lambda: ResnetGenerator(ResnetGeneratorConfig()))
    # conv7 3*64*49 + down 64*128*9 + 128*256*9 + 9 blocks * (2*256*256*9 + 256 bias)
    encoder = 3 * 64 * 49 + 64 * 128 * 9 + 128 * 256 * 9 + 9 * (2 * 256 * 256 * 9 + 256)
    # two transposed convs (no bias) + conv7 64->3 with bias
    decoder = 256 * 128 * 9 + 128 * 64 * 9 + 64 * 3 * 49 + 3
    assert count(g.encoder) == encoder == 10_997_184
    assert count(g.decoder) == decoder == 378_051
    assert count(g) == 11_375_235


@pytest.mark.parametrize("antialias", [True, False])
def test_cut_generator_parameters(antialias):
    g = on_meta(lambda: ResnetGenerator(ResnetGeneratorConfig(style="cut", antialias=antialias)))
    # the CUT reference has a bias on every conv: 64 + 128 + 256 + 9*256 + 128 + 64 = 2,944 more
    assert count(g) == 11_375_235 + 2_944 == 11_378_179


def test_synth_reid_discriminator_parameters():
    d = on_meta(lambda: PatchDiscriminator(PatchDiscriminatorConfig()))
    expected = (3 * 64 * 16 + 64) + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16 + (
        512 * 16 + 1)
    assert count(d) == expected == 2_763_841


@pytest.mark.parametrize("antialias", [True, False])
def test_cut_discriminator_parameters(antialias):
    d = on_meta(lambda: PatchDiscriminator(PatchDiscriminatorConfig(style="cut",
                                                                    antialias=antialias)))
    assert count(d) == 2_763_841 + 128 + 256 + 512 == 2_764_737


def test_patch_heads_parameters():
    heads = on_meta(lambda: PatchHeads([3, 128, 256, 256, 256], 256))
    expected = sum(c * 256 + 256 + 256 * 256 + 256 for c in [3, 128, 256, 256, 256])
    assert count(heads) == expected == 560_384


@pytest.mark.parametrize("init, stds", [
    # Synth-ReID's weights_init_kaiming: kaiming-normal, a = 0, fan_out: sqrt(2 / 256)
    ("kaiming", (0.08839, 0.08839)),
    # CUT's xavier-normal, gain 0.02: 0.02 sqrt(2 / (fan_in + fan_out)), 3 -> 256, 256 -> 256
    ("xavier", (0.02 * (2 / 259) ** 0.5, 0.02 * (2 / 512) ** 0.5))])
def test_patch_heads_init_scale(init, stds):
    torch.manual_seed(0)
    heads = PatchHeads([3, 256], 256, init=init)
    for (first, second), std in zip(((h[0], h[2]) for h in heads.heads), stds, strict=True):
        assert float(first.weight.detach().std()) == pytest.approx(std, rel=0.1)
        assert float(second.weight.detach().std()) == pytest.approx(0.08839 if init == "kaiming"
                                                           else 0.00125, rel=0.03)
        assert not first.bias.any() and not second.bias.any()


def test_patch_heads_default_to_synth_reid_init():
    torch.manual_seed(0)
    kaiming = PatchHeads([256], 256).heads[0][0].weight.detach().std()
    torch.manual_seed(0)
    xavier = PatchHeads([256], 256, init="xavier").heads[0][0].weight.detach().std()
    assert float(kaiming / xavier) == pytest.approx((2 / 256) ** 0.5 / (0.02 * (2 / 512) ** 0.5),
                                                    rel=0.03)  # 70.7x


@pytest.mark.parametrize("classes, total", [(538, 24_389_146), (438, 24_184_246)])
def test_reid_branch_parameters(classes, total):
    branch = on_meta(lambda: ReidBranch(256, classes))
    assert count(branch.stages) == 23_282_688  # torchvision ResNet-50 layer2 + 3 + 4
    assert count(branch) == 23_282_688 + 2 * 2048 + 2048 * classes + classes == total
    frozen = sum(p.numel() for p in branch.parameters() if not p.requires_grad)
    assert frozen == 2048  # the BNNeck bias


# --- shapes (paper size on meta, tiny on CPU) ------------------------------------------------

def test_synth_reid_generator_shapes_at_256x128():
    g = on_meta(lambda: ResnetGenerator(ResnetGeneratorConfig()))
    x = torch.empty(1, 3, 256, 128, device="meta")
    assert g.default_nce_layers == [0, 2, 3, 4, 8]
    assert g.feature_layer == 12
    code, feats = g.encode(x, [0, 1, 2, 3, 4, 8, 12])
    shapes = [tuple(f.shape[1:]) for f in feats]
    assert shapes == [(3, 262, 134), (64, 256, 128), (128, 128, 64), (256, 64, 32),
                      (256, 64, 32), (256, 64, 32), (256, 64, 32)]
    assert tuple(code.shape) == (1, 256, 64, 32)
    assert tuple(g(x).shape) == (1, 3, 256, 128)
    # NCE location counts per layer
    assert [f.shape[2] * f.shape[3] for f in g.encode(x, g.default_nce_layers)[1]] == [
        35_108, 8_192, 2_048, 2_048, 2_048]
    assert g.layer_channels(g.default_nce_layers) == [3, 128, 256, 256, 256]


def test_cut_generator_layers_and_shapes():
    g = on_meta(lambda: ResnetGenerator(ResnetGeneratorConfig(style="cut")))
    assert g.default_nce_layers == [0, 4, 8, 12, 16]  # CUT's nce_layers
    x = torch.empty(1, 3, 256, 128, device="meta")
    _, feats = g.encode(x, g.default_nce_layers)
    # CUT takes the downsampling convs' outputs before norm and blur (stride 1)
    assert [tuple(f.shape[1:]) for f in feats] == [
        (3, 262, 134), (128, 256, 128), (256, 128, 64), (256, 64, 32), (256, 64, 32)]
    assert tuple(g(x).shape) == (1, 3, 256, 128)
    plain = on_meta(lambda: ResnetGenerator(ResnetGeneratorConfig(style="cut", antialias=False)))
    assert plain.default_nce_layers == [0, 4, 7, 10, 14]


def test_synth_reid_discriminator_shapes_at_256x128():
    d = on_meta(lambda: PatchDiscriminator(PatchDiscriminatorConfig()))
    x = torch.empty(1, 3, 256, 128, device="meta")
    shapes = []
    for module in d.model:
        x = module(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(64, 128, 64), (64, 128, 64), (128, 64, 32), (256, 32, 16),
                      (512, 31, 17), (1, 32, 16)]
    out, feats = d.features(torch.empty(1, 3, 256, 128, device="meta"))
    assert tuple(out.shape) == (1, 1, 32, 16)
    assert [tuple(f.shape[1:]) for f in feats] == shapes[1:5]  # dis_layers 1..4


@pytest.mark.parametrize("antialias", [True, False])
def test_cut_discriminator_shape(antialias):
    d = on_meta(lambda: PatchDiscriminator(PatchDiscriminatorConfig(style="cut",
                                                                    antialias=antialias)))
    # 70x70 PatchGAN: three halvings (128x64 -> 32x16), then two stride-1 4x4 convs, pad 1
    assert tuple(d(torch.empty(1, 3, 256, 128, device="meta")).shape) == (1, 1, 30, 14)


def test_reid_branch_shapes():
    branch = on_meta(lambda: ReidBranch(256, 538))
    x = torch.empty(2, 256, 64, 32, device="meta")
    shapes = []
    for stage in branch.stages:
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(512, 32, 16), (1024, 16, 8), (2048, 8, 4)]
    branch.train()
    out = branch(torch.empty(2, 256, 64, 32, device="meta"))
    assert tuple(out["logits"].shape) == (2, 538)
    assert tuple(out["neck_features"].shape) == (2, 2048)


@pytest.mark.parametrize("style", ["synth-reid", "cut"])
def test_tiny_forward_on_cpu(style):
    torch.manual_seed(0)
    g = ResnetGenerator(ResnetGeneratorConfig(style=style, ngf=8, blocks=2))
    d = PatchDiscriminator(PatchDiscriminatorConfig(style=style, ndf=8))
    x = torch.rand(2, 3, 64, 32) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert torch.isfinite(d(y)).all()
    if style == "synth-reid":
        assert tuple(d(y).shape) == (2, 1, 8, 4)  # 64x32 / 8


def test_instance_norm_has_no_affine_and_no_running_stats():
    g = ResnetGenerator(ResnetGeneratorConfig(ngf=4, blocks=1))
    norms = [m for m in g.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert norms and all(not m.affine and not m.track_running_stats for m in norms)


def test_synth_reid_bias_pattern():
    g = ResnetGenerator(ResnetGeneratorConfig(ngf=4, blocks=1))
    block = g.encoder[4].block
    assert block[1].bias is None and block[5].bias is not None
    assert g.encoder[1][0].bias is None and g.decoder[-2].bias is not None


def test_blur_filters():
    # a constant image stays constant through the blur-pool and the [1,3,3,1] upsampler
    x = torch.full((1, 2, 8, 6), 3.0)
    assert torch.allclose(BlurPool(2)(x), torch.full((1, 2, 4, 3), 3.0))
    assert torch.allclose(BlurUpsample(2)(x), torch.full((1, 2, 16, 12), 3.0))
    # an impulse spreads as [1, 2, 1]^2 / 16 (centre weight 4/16)
    impulse = torch.zeros(1, 1, 6, 6)
    impulse[0, 0, 2, 2] = 16.0
    assert BlurPool(1)(impulse)[0, 0, 1, 1].item() == pytest.approx(4.0)


def test_encode_rejects_unknown_layers():
    g = ResnetGenerator(ResnetGeneratorConfig(ngf=4, blocks=1))
    with pytest.raises(ValueError, match="does not exist"):
        g.layer_channels([7])

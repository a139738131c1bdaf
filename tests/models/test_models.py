"""Backbones, pooling and heads: shapes, paper parameter counts (meta device), hand values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from reidcore.errors import ReidError
from reidcore.models import timm_backbone
from reidcore.models.config import IbnResNetConfig, TimmBackboneConfig
from reidcore.models.heads import BNNeck, Classifier, Embedding
from reidcore.models.pooling import GeneralizedMeanPooling, build_pooling

# torchvision/timm ResNet-50 without its 1000-way classifier (2048*1000 + 1000 = 2,049,000
# fewer than the well-known 25,557,032).
RESNET50_TRUNK = 25_557_032 - 2_049_000


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_meta(kind: str, **options):
    from reidcore.models import ibn, timm_backbone

    with torch.device("meta"):
        if kind == "timm":
            return timm_backbone.build(TimmBackboneConfig(**options))
        return ibn.build(IbnResNetConfig(**options))


def test_resnet50_parameter_count_on_meta_device():
    backbone = build_meta("timm", model="resnet50")
    assert n_params(backbone.trunk) == RESNET50_TRUNK == 23_508_032
    assert backbone.feature_dim == 2048


def test_ibn_a_has_resnet50_parameter_count_and_13_instance_norms():
    backbone = build_meta("ibn")
    # IN(affine) on half the channels + BN on the other half = one BN's parameters.
    assert n_params(backbone.trunk) == RESNET50_TRUNK
    norms = [m for m in backbone.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 3 + 4 + 6  # every block of stages 1-3, none in stage 4
    assert [m.num_features for m in norms[:1]] == [32]  # 64 planes, half IN
    assert build_meta("ibn", depth=101).feature_dim == 2048


@pytest.mark.parametrize("kind", ["timm", "ibn"])
@pytest.mark.parametrize("last_stride, expected", [(1, (8, 4)), (2, (4, 2))])
def test_last_stride_sets_final_map_size(kind, last_stride, expected):
    backbone = build_meta(kind, last_stride=last_stride)
    images = torch.empty(2, 3, 128, 64, device="meta")
    maps = backbone.forward_features(images)
    assert tuple(maps.shape) == (2, 2048, *expected)
    assert tuple(backbone(images).shape) == (2, 2048)


def test_timm_small_model_forward_backward_cpu():
    from reidcore.models import timm_backbone

    torch.manual_seed(0)
    backbone = timm_backbone.build(TimmBackboneConfig(model="resnet18", pooling="gem"))
    out = backbone(torch.randn(2, 3, 64, 32))
    assert out.shape == (2, 512) and torch.isfinite(out).all()
    out.sum().backward()
    assert backbone.pool.p.grad is not None


def test_timm_unknown_model_and_last_stride_errors():
    from reidcore.models import timm_backbone

    with pytest.raises(ReidError, match="unknown timm model 'resnet5O'"):
        timm_backbone.build(TimmBackboneConfig(model="resnet5O"))
    with pytest.raises(ReidError, match="layer4"):
        with torch.device("meta"):
            timm_backbone.build(TimmBackboneConfig(model="vit_tiny_patch16_224", last_stride=1))


def test_local_weights_load_and_mismatch_report(tmp_path):
    from safetensors.torch import save_file

    from reidcore.models import ibn, timm_backbone

    torch.manual_seed(0)
    source = timm_backbone.build(TimmBackboneConfig(model="resnet18", last_stride=2))
    state = {k: v.clone() for k, v in source.trunk.state_dict().items()}
    state["fc.weight"] = torch.zeros(10, 512)  # an ImageNet head is ignored
    torch.save(state, tmp_path / "r18.pth")
    save_file(state, str(tmp_path / "r18.safetensors"))
    for name in ("r18.pth", "r18.safetensors"):
        loaded = timm_backbone.build(TimmBackboneConfig(model="resnet18",
                                                        pretrained=str(tmp_path / name)))
        assert torch.equal(loaded.trunk.conv1.weight, source.trunk.conv1.weight)
    del state["conv1.weight"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ReidError, match=r"missing keys: conv1\.weight.*unexpected keys: extra"):
        timm_backbone.build(TimmBackboneConfig(model="resnet18",
                                               pretrained=str(tmp_path / "bad.pth")))
    with pytest.raises(ReidError, match="not found"):
        ibn.build(IbnResNetConfig(pretrained=str(tmp_path / "nope.pth")))


def test_weights_loading_refuses_pickled_code(tmp_path):
    from reidcore.models.weights import read_state_dict

    torch.save({"conv": torch.zeros(1), "evil": nn.ReLU()}, tmp_path / "pickled.pth")
    with pytest.raises(ReidError, match="never pickled code"):
        read_state_dict(tmp_path / "pickled.pth")


def test_gem_hand_values():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    assert GeneralizedMeanPooling(p=2.0)(x).item() == pytest.approx(math.sqrt(7.5))
    assert GeneralizedMeanPooling(p=1.0)(x).item() == pytest.approx(2.5)
    assert GeneralizedMeanPooling(p=3.0)(torch.full((1, 1, 3, 3), 0.7)).item() == pytest.approx(0.7)
    gem = GeneralizedMeanPooling(p=3.0)
    gem(x).sum().backward()
    assert gem.p.grad is not None and gem.p.grad.item() > 0  # the 3-mean grows with p
    assert not GeneralizedMeanPooling(p=3.0, trainable=False).p.requires_grad


def test_avg_and_max_pooling():
    x = torch.arange(8.0).view(1, 2, 2, 2)
    assert build_pooling("avg")(x).tolist() == [[1.5, 5.5]]
    assert build_pooling("max")(x).tolist() == [[3.0, 7.0]]


def test_bnneck_frozen_bias_and_normalised_output():
    neck = BNNeck(4)
    assert not neck.bn.bias.requires_grad and neck.bn.weight.requires_grad
    x = torch.randn(16, 4) * 5 + 3
    y = neck(x)
    assert torch.allclose(y.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(y.var(0, unbiased=False), torch.ones(4), atol=1e-3)


def test_classifier_and_embedding_shapes():
    classifier = Classifier(8, 5)
    assert classifier.fc.bias is None and classifier(torch.randn(3, 8)).shape == (3, 5)
    assert float(classifier.fc.weight.detach().std()) < 0.01
    assert Embedding(8, 4, batch_norm=True)(torch.randn(3, 8)).shape == (3, 4)


@pytest.mark.parametrize("model", ["resnest14d", "resnet18d"])
def test_last_stride_one_runs_on_models_with_strided_avg_pools(model):
    """ResNeSt's avd pool and ResNet-D's shortcut pool become identities, not invalid pools."""
    backbone = timm_backbone.build(TimmBackboneConfig(model=model, last_stride=1))
    with torch.no_grad():
        maps = backbone.eval().forward_features(torch.randn(1, 3, 64, 32))
    assert tuple(maps.shape[2:]) == (4, 2)  # stride 16, not 32

"""Loss values on constructed inputs, derived by hand (design/methods/cut-reid.md, A.10
checks 3-5; each expected value is re-derived from its closed form here)."""

import math

import pytest
import torch

from reid_plugin_cut_reid.config import FeatureMatchingConfig, LSGANConfig, PatchNCEConfig
from reid_plugin_cut_reid.losses import (
    FeatureMatchingLoss,
    LSGANLoss,
    PatchNCELoss,
    cross_entropy_label_smooth,
    feature_matching,
    gram,
    lsgan,
    patch_nce,
)

T = 0.07


# --- PatchNCE -------------------------------------------------------------------------------

def test_patch_nce_orthonormal():
    # q = k = one-hot: logits [1/T, 0 x 255 (other patches), -10/T (own slot, masked)] ->
    # log(1 + 255 e^{-1/T} + e^{-11/T})
    q = torch.eye(256)[None]
    loss = patch_nce(q, q.clone(), T)
    exact = math.log(1 + 255 * math.exp(-1 / T) + math.exp(-11 / T))
    assert exact == pytest.approx(1.5933e-4, rel=1e-3)  # the notes' value
    assert loss.shape == (256,)
    assert loss.mean().item() == pytest.approx(exact, rel=0.05)  # float32 gives ~1.589e-4


def test_patch_nce_collapsed():
    # every feature identical: logits [1/T, 1/T x 255, -10/T] -> log(256 + e^{-11/T})
    q = torch.zeros(1, 256, 256)
    q[..., 0] = 1
    assert patch_nce(q, q.clone(), T).mean().item() == pytest.approx(math.log(256), rel=1e-5)
    assert math.log(256) == pytest.approx(5.545177, abs=1e-6)


def test_patch_nce_shifted_positive():
    # q_i = k_{i+1}: positive dot 0, one negative dot 1 (j = i + 1), 254 negatives 0, own
    # slot -10: loss = log(e^0 + e^{1/T} + 254 + e^{-10/T}) - 0
    k = torch.eye(256)[None]
    q = torch.roll(k, shifts=1, dims=2)  # q_i = e_{i+1} = k_{i+1}
    expected = math.log(1 + math.exp(1 / T) + 254 + math.exp(-10 / T))
    assert expected == pytest.approx(14.285874, abs=1e-5)
    assert patch_nce(q, k, T).mean().item() == pytest.approx(expected, rel=1e-5)


def test_patch_nce_negatives_come_from_the_same_image_only():
    # B = 2 images of 4 patches, all 8 one-hot features distinct: 3 negatives per patch
    feats = torch.eye(8)[None].reshape(2, 4, 8)
    loss = patch_nce(feats, feats.clone(), T).mean().item()
    # within the image: [1/T, 0 x 3, -10/T] -> log(1 + 3 e^{-1/T} + e^{-11/T}) = 1.87e-6;
    # pooling the minibatch would give 7 zero negatives: log(1 + 7 e^{-1/T} + ...)
    same_image = math.log(1 + 3 * math.exp(-1 / T) + math.exp(-11 / T))
    pooled = math.log(1 + 7 * math.exp(-1 / T) + math.exp(-11 / T))
    assert loss == pytest.approx(same_image, rel=0.05)
    assert abs(loss - pooled) > 0.5 * (pooled - same_image)
    assert math.log(1 + 3 * math.exp(-1 / T)) == pytest.approx(1.87e-6, rel=0.01)


def test_patch_nce_does_not_mix_images():
    # image 2's keys equal image 1's queries: if negatives crossed images, image 1's loss
    # would see a dot of 1 among its negatives and jump to ~log(2 + ...)
    a = torch.eye(4)
    q = torch.stack([a, a])
    k = torch.stack([a, a])
    loss = patch_nce(q, k, T)
    assert loss.max().item() < 1e-5


def test_patch_nce_keys_are_detached():
    q = torch.randn(1, 8, 4, requires_grad=True)
    k = torch.randn(1, 8, 4, requires_grad=True)
    patch_nce(torch.nn.functional.normalize(q, dim=-1),
              torch.nn.functional.normalize(k, dim=-1)).mean().backward()
    assert q.grad is not None and k.grad is None


def test_patch_nce_loss_component_uses_same_locations_and_averages_layers():
    torch.manual_seed(0)
    loss = PatchNCELoss(PatchNCEConfig(in_channels=[4, 6], num_patches=5, mlp=False))
    # without MLP the heads only normalise; identical keys and queries of one-hot patches
    k1 = torch.zeros(2, 4, 3, 3)
    k1[:, 0] = 1.0  # every location identical -> collapsed: log(N) with N = 5 patches
    k2 = torch.randn(2, 6, 4, 4)
    value = loss.nce([k1, k2], [k1.clone(), k2.clone()])
    # layer 1 is collapsed: exactly log(5); layer 2 has queries = keys (positive dot 1, the
    # maximum) and distinct patches, so it is below log(5); the mean is below log(5) too
    single = PatchNCELoss(PatchNCEConfig(in_channels=[4], num_patches=5, mlp=False))
    assert single.nce([k1], [k1.clone()]).item() == pytest.approx(math.log(5), rel=1e-5)
    assert value.item() < math.log(5)


def test_patch_nce_identity_term_is_weighted():
    torch.manual_seed(0)
    cfg = PatchNCEConfig(in_channels=[2], num_patches=4, mlp=False, identity_weight=0.5)
    loss = PatchNCELoss(cfg)
    collapsed = torch.zeros(1, 2, 2, 2)
    collapsed[:, 0] = 1
    outputs = {"nce_source": [collapsed], "nce_translated": [collapsed],
               "nce_target": [collapsed], "nce_target_translated": [collapsed]}
    assert loss(outputs, {}).item() == pytest.approx(1.5 * math.log(4), rel=1e-5)


def test_patch_nce_heads_have_one_per_layer():
    loss = PatchNCELoss(PatchNCEConfig())
    assert len(loss.heads.heads) == 5
    assert [h[0].in_features for h in loss.heads.heads] == [3, 128, 256, 256, 256]


# --- label-smoothed cross-entropy -----------------------------------------------------------

@pytest.mark.parametrize("k, expected", [(538, 6.287859), (438, 6.082219)])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_label_smoothed_ce_of_zero_logits_is_log_k(k, expected, eps):
    logits = torch.zeros(3, k)
    value = cross_entropy_label_smooth(logits, torch.tensor([0, 5, k - 1]), eps).item()
    assert value == pytest.approx(math.log(k), rel=1e-6)
    assert math.log(k) == pytest.approx(expected, abs=1e-6)


def test_label_smoothed_ce_single_large_logit():
    # logit 10 at the target, 0 elsewhere (K = 538): log Z = log(e^10 + 537);
    # loss = log Z - (1 - eps) * 10 - eps/K * 10
    k, eps = 538, 0.1
    logits = torch.zeros(1, k)
    logits[0, 7] = 10.0
    log_z = math.log(math.exp(10) + k - 1)
    expected = log_z - (1 - eps) * 10 - eps / k * 10
    assert expected == pytest.approx(1.022229, abs=1e-6)
    value = cross_entropy_label_smooth(logits, torch.tensor([7]), eps).item()
    assert value == pytest.approx(expected, abs=1e-5)  # float32 log-softmax


# --- LSGAN and feature matching ------------------------------------------------------------

def test_lsgan_values():
    d = torch.full((1, 1, 32, 16), 0.3)
    assert lsgan(d, 1.0).item() == pytest.approx(0.49)   # (1 - 0.3)^2
    assert lsgan(d, 0.0).item() == pytest.approx(0.09)   # 0.3^2
    assert 0.5 * lsgan(d, 0.0).item() == pytest.approx(0.045)
    g = LSGANLoss(LSGANConfig(role="generator"))
    dis = LSGANLoss(LSGANConfig(role="discriminator"))
    real = torch.full((1, 1, 32, 16), 0.8)
    assert g({"d_fake": d}, {}).item() == pytest.approx(0.49)
    # (1 - 0.8)^2 + 0.3^2 = 0.04 + 0.09
    assert dis({"d_fake": d, "d_real": real}, {}).item() == pytest.approx(0.13)


def test_feature_matching_values():
    a = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2, 2)]
    b = [torch.ones(1, 2, 4, 4), torch.full((1, 3, 2, 2), 3.0)]
    # mean of per-layer MSEs: (1 + 9) / 2
    assert feature_matching(a, b).item() == pytest.approx(5.0)
    loss = FeatureMatchingLoss(FeatureMatchingConfig())
    assert loss({"d_features_a": a, "d_features_b": b}, {}).item() == pytest.approx(5.0)
    with pytest.raises(ValueError):
        feature_matching(a, b[:1])


def test_gram_matching_values():
    x = torch.ones(1, 2, 2, 2)  # Gram = (H*W) * ones / (C*H*W) = 1/C = 0.5 everywhere
    assert torch.allclose(gram(x), torch.full((1, 2, 2), 0.5))
    y = torch.zeros(1, 2, 2, 2)
    assert feature_matching([x], [y], "gram_match").item() == pytest.approx(0.25)

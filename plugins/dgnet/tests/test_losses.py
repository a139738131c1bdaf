"""LSGAN, R1, teacher KL and ramp/LR values, derived by hand from the notes."""

import math

import pytest
import torch

from reid_plugin_dgnet.config import DGNetConfig
from reid_plugin_dgnet.losses import (
    discriminator_loss,
    generator_loss,
    r1_penalty,
    soft_label,
    teacher_kl,
)
from reid_plugin_dgnet.schedule import loss_weights, lr_factor


def zero_discriminator(x):
    """Three scales whose every output is 0 (still a function of x for R1)."""
    return [0.0 * x.mean((1,)).unsqueeze(1)[:, :, ::s, ::s] for s in (1, 2, 4)]


def test_lsgan_values_with_all_zero_outputs():
    fake = torch.randn(2, 3, 8, 4, requires_grad=True)
    real = torch.randn(2, 3, 8, 4)
    # G: 3 scales x 2 x mean((0 - 1)^2) = 6 per generated batch (12 for x_ba + x_ab)
    g = generator_loss(zero_discriminator, fake)
    assert g.item() == pytest.approx(6.0)
    assert (g + generator_loss(zero_discriminator, fake)).item() == pytest.approx(12.0)
    # D without R1: 3 x (0 + 1) = 3 per (fake, real) pair
    d, penalty = discriminator_loss(zero_discriminator, fake, real, r1_w=0.0)
    assert d.item() == pytest.approx(3.0) and penalty.item() == 0.0


def test_r1_penalty_of_a_linear_discriminator():
    # D(x) = sum(w * x): d sum(D)/dx = w per sample, so R1 = sum(w^2) for every sample
    w = torch.tensor([1.0, -2.0, 0.5])
    real = torch.randn(4, 3, requires_grad=True)
    assert r1_penalty((real * w).sum(1), real).item() == pytest.approx(1 + 4 + 0.25)


def test_r1_is_on_real_images_only_and_weighted_per_scale():
    w = torch.tensor(2.0)

    def linear(x):  # two scales, each w * mean over pixels -> gradient w / numel per pixel
        return [w * x.mean((1, 2, 3)).view(-1, 1, 1, 1)] * 2

    fake = torch.randn(2, 1, 2, 2)
    real = torch.randn(2, 1, 2, 2)
    _, penalty = discriminator_loss(linear, fake, real, r1_w=0.01)
    # per scale: sum over 4 pixels of (2 / 4)^2 = 1 per sample -> 0.01 x 1, two scales
    assert penalty.item() == pytest.approx(0.02)


def test_teacher_kl_values():
    student = torch.zeros(3, 751)  # uniform over 751 classes
    one_hot = torch.nn.functional.one_hot(torch.tensor([0, 5, 750]), 751).float()
    assert teacher_kl(student, one_hot).item() == pytest.approx(math.log(751), abs=1e-4)
    assert math.log(751) == pytest.approx(6.6214, abs=1e-4)
    logits = torch.randn(3, 751)
    same = torch.softmax(logits, 1)
    assert teacher_kl(logits, same).item() == pytest.approx(0.0, abs=1e-5)


def test_soft_label_averages_the_mirrored_image():
    def teacher(x):  # logits: class 0 scores the left column, class 1 the right one
        return torch.stack([x[:, 0, 0, 0], x[:, 0, 0, -1]], 1)

    image = torch.tensor([[[[10.0, 0.0]]]])
    label = soft_label(teacher, image)
    # original: softmax(10, 0), mirrored: softmax(0, 10) -> mean is (0.5, 0.5)
    assert torch.allclose(label, torch.tensor([[0.5, 0.5]]), atol=1e-6)


def test_ramps_at_the_notes_iterations():
    cfg = DGNetConfig()
    assert loss_weights(cfg, 30000)["prim"] == 0.0
    assert loss_weights(cfg, 30001)["prim"] == pytest.approx(0.0005)
    assert loss_weights(cfg, 32000)["prim"] == pytest.approx(1.0)
    assert loss_weights(cfg, 34000)["prim"] == pytest.approx(2.0)
    assert loss_weights(cfg, 90000)["prim"] == pytest.approx(2.0)
    assert loss_weights(cfg, 34000)["fine"] == pytest.approx(0.4)
    assert loss_weights(cfg, 32000)["code"] == pytest.approx(1.0)
    assert loss_weights(cfg, 33000)["code"] == pytest.approx(1.0)
    assert loss_weights(cfg, 33000)["cycle"] == pytest.approx(1.5)
    assert loss_weights(cfg, 34000)["cycle"] == pytest.approx(2.0)
    assert loss_weights(cfg, 100)["cycle"] == 0.0


def test_learning_rates_at_the_milestones():
    cfg = DGNetConfig()
    for step, factor in ((0, 1.0), (59999, 1.0), (60000, 0.1), (89999, 0.1), (90000, 0.01)):
        assert lr_factor(cfg, step) == pytest.approx(factor)
    assert cfg.lr_g * lr_factor(cfg, 60000) == pytest.approx(1e-5)
    assert cfg.lr_d * lr_factor(cfg, 90000) == pytest.approx(1e-6)
    assert cfg.lr_ea * lr_factor(cfg, 60000) == pytest.approx(2e-4)
    assert cfg.lr_ea * cfg.head_lr_mult * lr_factor(cfg, 90000) == pytest.approx(2e-4)

"""LR schedules at given epochs (hand values), parameter groups, freezing and clipping."""

from __future__ import annotations

import math

import pytest
import torch

from reidcore.engine.context import Precision
from reidcore.engine.optim import Clock, lr_factor, make_optimizer, make_scheduler
from reidcore.train_config import TrainConfig

# The strong baseline (Luo et al. 2019): 3.5e-4, linear warm-up over 10 epochs from 3.5e-5,
# x0.1 at epochs 40 and 70.
LUO = TrainConfig(lr=3.5e-4, warmup_epochs=10, warmup_factor=0.1, milestones=[40, 70],
                  gamma=0.1, epochs=120)


@pytest.mark.parametrize("epoch, lr", [(0, 3.5e-5), (5, 1.925e-4), (9, 3.185e-4), (10, 3.5e-4),
                                       (39, 3.5e-4), (40, 3.5e-5), (69, 3.5e-5), (70, 3.5e-6),
                                       (119, 3.5e-6)])
def test_multistep_with_warmup_hand_values(epoch, lr):
    # warm-up at epoch e: 3.5e-5 + (3.5e-4 - 3.5e-5) * e / 10, e.g. e = 5 -> 1.925e-4
    assert LUO.lr * lr_factor(epoch, LUO) == pytest.approx(lr, rel=1e-9)


def test_cosine_hand_values():
    cfg = TrainConfig(schedule="cosine", epochs=12, warmup_epochs=2, warmup_factor=0.1,
                      min_lr_factor=0.0)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(1, cfg) == pytest.approx(0.55)
    assert lr_factor(2, cfg) == pytest.approx(1.0)
    assert lr_factor(7, cfg) == pytest.approx(0.5)  # half-way through the 10 cosine epochs
    assert lr_factor(12, cfg) == pytest.approx(0.0, abs=1e-12)
    floor = TrainConfig(schedule="cosine", epochs=10, warmup_epochs=0, min_lr_factor=0.01)
    assert lr_factor(5, floor) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(10, floor) == pytest.approx(0.01)
    assert lr_factor(3, TrainConfig(schedule="constant", warmup_epochs=0)) == 1.0


def test_scheduler_follows_clock_by_epoch_and_by_step():
    param = torch.nn.Parameter(torch.zeros(1))
    for by, expected in (("epoch", [0.1, 0.1, 0.1, 0.1, 1.0]),
                         ("step", [0.1, 0.325, 0.55, 0.775, 1.0])):
        cfg = TrainConfig(lr=1.0, warmup_epochs=1, warmup_factor=0.1, schedule="constant",
                          schedule_by=by)
        optimizer = make_optimizer({"all": [param]}, cfg)
        clock = Clock()
        clock.start_epoch(0, 4)
        scheduler = make_scheduler(optimizer, cfg, clock)
        seen = []
        for _ in range(5):
            seen.append(optimizer.param_groups[0]["lr"])
            clock.advance()
            scheduler.step()
            if clock.index == 0:
                clock.start_epoch(clock.epoch, 4)
        assert seen == pytest.approx(expected)
    assert scheduler.state_dict() == {}


def test_parameter_groups_lr_mult_and_frozen_bias():
    net = torch.nn.Linear(2, 2)
    net.bias.requires_grad_(False)
    head = torch.nn.Linear(2, 3)
    cfg = TrainConfig(optimizer="sgd", lr=0.01, lr_mult={"head": 10.0}, momentum=0.5)
    optimizer = make_optimizer({"body": net.parameters(), "head": head.parameters()}, cfg)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["body"]["lr"] == 0.01 and groups["head"]["lr"] == pytest.approx(0.1)
    assert len(groups["body"]["params"]) == 1  # the frozen bias is left out
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.5
    assert isinstance(make_optimizer({"a": head.parameters()}, TrainConfig(optimizer="adamw")),
                      torch.optim.AdamW)


def test_freeze_groups():
    from reidcore.engine.optim import Optimization
    from reidcore.engine.runner import apply_freeze

    body, head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    optimizer = make_optimizer({"backbone": body.parameters(), "head": head.parameters()},
                               TrainConfig())
    optimization = Optimization({"main": optimizer})
    apply_freeze(optimization, ["backbone"], True)
    assert not any(p.requires_grad for p in body.parameters())
    assert all(p.requires_grad for p in head.parameters())
    apply_freeze(optimization, ["backbone"], False)
    assert all(p.requires_grad for p in body.parameters())


def test_precision_clips_gradients_and_stays_fp32_on_cpu():
    param = torch.nn.Parameter(torch.zeros(4))
    optimizer = torch.optim.SGD([param], lr=1.0)
    precision = Precision.create(torch.device("cpu"), "bf16", clip_grad_norm=1.0)
    assert precision.mode == "fp32" and precision.dtype is None
    with precision.autocast():
        loss = (param * torch.tensor([3.0, 4.0, 0.0, 0.0])).sum()
    precision.backward(loss)
    precision.step(optimizer)  # gradient (3, 4, 0, 0) has norm 5: clipped to norm 1
    assert param.detach().tolist() == pytest.approx([-0.6, -0.8, 0.0, 0.0], rel=1e-5)
    assert math.isclose(float(param.detach().norm()), 1.0, rel_tol=1e-5)


def test_clock_ends_epoch_on_every_nth_and_the_last_epoch():
    # 3 steps per epoch, 5 epochs, every 2nd: the last steps of epochs 2, 4 and 5 (1-based)
    clock = Clock()
    ends = []
    for epoch in range(5):
        clock.start_epoch(epoch, 3)
        for index in range(3):
            if clock.ends_epoch(2, epochs=5):
                ends.append((epoch + 1, index))
            clock.advance()
    assert ends == [(2, 2), (4, 2), (5, 2)]
    assert not Clock(epoch=1, index=2, length=3).ends_epoch(0, epochs=2)  # 0: never

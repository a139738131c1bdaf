"""The learning rates of the notes (C.4, C.8.5), as functions and as the san method's
optimizers see them through the engine's clock."""

import pytest
import torch
from conftest import make_san

from reid_plugin_san.schedule import main_lr, warmup_lr


@pytest.mark.parametrize("epoch,lr", [(0, 8.0e-6), (10, 8.00e-5), (19, 6.36e-4)])
def test_warmup_lr(epoch, lr):
    assert warmup_lr(epoch) == pytest.approx(lr, rel=2e-3)


@pytest.mark.parametrize("epoch,lr", [(0, 8e-4), (39, 8e-4), (40, 4e-4), (79, 4e-4),
                                      (80, 2e-4), (120, 1e-4), (280, 6.25e-6),
                                      (299, 6.25e-6)])
def test_main_lr(epoch, lr):
    assert main_lr(epoch) == pytest.approx(lr, rel=1e-9)


def test_method_optimizers_follow_the_clock(registry):
    """The paper's schedule (method defaults: 20 warm-up epochs, then 300 main epochs)
    read by the san method's schedulers; the decoder-side Adams stay at 1e-5."""
    method = make_san(registry)
    optimization = method.configure_optimizers()
    opt, clock = optimization.optimizers, method.context.clock

    def lrs(epoch):
        clock.start_epoch(epoch, 2)
        for scheduler in optimization.schedulers.values():
            scheduler.sync()
        return {name: o.param_groups[0]["lr"] for name, o in opt.items()}

    assert lrs(0)["warmup"] == pytest.approx(8e-6)
    assert lrs(10)["warmup"] == pytest.approx(8.00e-5, rel=2e-3)
    assert lrs(19)["warmup"] == pytest.approx(6.36e-4, rel=2e-3)
    for main_epoch, lr in ((0, 8e-4), (39, 8e-4), (40, 4e-4), (80, 2e-4), (280, 6.25e-6)):
        now = lrs(20 + main_epoch)
        assert now["main"] == pytest.approx(lr)
        assert now["encoder_texture"] == now["decoder"] == 1e-5
    assert opt["main"].defaults["amsgrad"] and not opt["warmup"].defaults["amsgrad"]
    assert opt["main"].defaults["weight_decay"] == opt["warmup"].defaults["weight_decay"] == 5e-4
    assert opt["decoder"].defaults["betas"] == (0.5, 0.999)
    assert opt["encoder_texture"].defaults["weight_decay"] == 0
    assert isinstance(opt["main"], torch.optim.Adam)

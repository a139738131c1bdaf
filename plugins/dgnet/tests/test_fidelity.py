"""Fidelity to the official iteration beyond the losses: Ea's BatchNorm passes (their
number and order, as the official ``forward`` / ``gen_update`` make them), the official
teacher's dropout after its first image dump (an option), and the ``swap`` capability."""

import pytest
import torch
from conftest import make_batch, make_dgnet
from reidcore.testing import step_optimizers
from torch import nn

AFTER_WARMUP = 100_000


def batchnorms(module):
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def ea_inputs(dgnet, batch, step):
    """The images the live Ea saw, in order, during one training step, and its BN counts."""
    dgnet.frozen_ea()  # made before the hook, so the frozen copy does not carry it
    seen = []
    hook = dgnet.ea.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    before = [int(bn.num_batches_tracked) for bn in batchnorms(dgnet.ea)]
    try:
        dgnet.training_step(batch, step, step_optimizers(dgnet, dgnet.context))
    finally:
        hook.remove()
    after = [int(bn.num_batches_tracked) for bn in batchnorms(dgnet.ea)]
    return seen, [b - a for a, b in zip(before, after, strict=True)]


@pytest.mark.parametrize(("erasing", "step", "passes"), [
    (1.0, 0, 8),             # clean a, b, pa, pb then their erased copies
    (0.0, 0, 4),             # no erasing: the clean passes give the ID logits
    (1.0, AFTER_WARMUP, 10),  # + the student on x_ba, x_ab for the teacher's KL
])
def test_every_ea_batchnorm_sees_the_official_train_mode_passes(registry, erasing, step,
                                                                 passes):
    dgnet = make_dgnet(registry, {"erasing": erasing})
    batch = make_batch()
    seen, counts = ea_inputs(dgnet, batch, step)
    assert len(batchnorms(dgnet.ea)) > 2  # trunk and both heads
    assert counts == [passes] * len(counts)  # the heads' BN too, not only the trunk's
    assert len(seen) == passes
    clean = [batch["images"], batch["second"]["images"], batch["positives"],
             batch["second"]["positives"]]
    for got, want in zip(seen[:4], clean, strict=True):
        assert torch.equal(got, want)
    if erasing:  # every image erased (p = 1): the next four differ from the clean ones
        for got, want in zip(seen[4:8], clean, strict=True):
            assert got.shape == want.shape and not torch.equal(got, want)


def test_teacher_dropout_is_off_unless_the_official_behaviour_is_asked(registry):
    from reid_plugin_dgnet.teacher import Teacher

    def teacher():
        net = nn.Sequential(nn.Flatten(), nn.LazyLinear(8), nn.BatchNorm1d(8),
                            nn.Dropout(0.5), nn.Linear(8, 3))
        return Teacher([net], net, 3, "train", "test"), net

    for option, expected in (("off", False), ("after_first_grid", True)):
        dgnet = make_dgnet(registry, {"teacher_dropout": option, "log_images_every": 1})
        dgnet.teacher, net = teacher()
        optim = step_optimizers(dgnet, dgnet.context)
        dgnet.teacher.logits(torch.randn(4, 3, 64, 32))
        assert not net[3].training and net[2].training  # BN on batch statistics only
        dgnet.training_step(make_batch(), AFTER_WARMUP, optim)  # writes the first grid
        assert dgnet.teacher.dropout is expected
        dgnet.teacher.logits(torch.randn(4, 3, 64, 32))
        assert net[3].training is expected, option


def test_official_teacher_dropout_needs_image_grids(registry):
    with pytest.raises(Exception, match="log_images_every"):
        make_dgnet(registry, {"teacher_dropout": "after_first_grid", "log_images_every": 0})


def test_swap_decodes_appearance_on_structure_in_the_input_space(registry):
    from reidcore import api

    dgnet = make_dgnet(registry)
    protocol = getattr(api, "SwapsAppearance", None)
    if protocol is not None:
        assert isinstance(dgnet, protocol)
    batch = make_batch()
    a, s = batch["images"], batch["second"]["images"]
    for module in dgnet.modules().values():
        module.train()
    out = dgnet.swap(a, s)
    assert out.shape == a.shape and not out.requires_grad
    assert all(m.training for m in dgnet.modules().values())  # modes restored
    # eval mode: each row depends on its own pair only (no batch statistics)
    torch.testing.assert_close(dgnet.swap(a[1:2], s[1:2]), out[1:2])
    # Es sees the structure image's gray only: permuting its channels changes nothing
    torch.testing.assert_close(dgnet.swap(a, s[:, [2, 0, 1]]), out)
    # the appearance image reaches the output (through the code and AdaIN)
    assert not torch.allclose(dgnet.swap(a.flip(0), s), out)
    with pytest.raises(Exception, match="same shape"):
        dgnet.swap(a, s[:2])

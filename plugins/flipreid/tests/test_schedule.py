"""The LR schedule at given epochs (values of the notes, B.8.6) and the Keras-L2 to
weight-decay equivalence."""

import pytest

from reid_plugin_flipreid.schedule import flipreid_lr, keras_l2_to_weight_decay, phased_lr

R50 = {0: 2e-6, 1: 2.4e-5, 5: 1.12e-4, 9: 2e-4, 10: 2e-4, 39: 2e-4, 40: 2e-5, 69: 2e-5,
       70: 2e-6, 100: 2e-6, 199: 2e-6}
# ResNeSt-50 / IBN-R50: base 3e-4, floor 3e-6; low + (base - low) e / 9 for e < 10.
R50S = {0: 3e-6, 1: 3e-6 + 297e-6 / 9, 9: 3e-4, 39: 3e-4, 40: 3e-5, 70: 3e-6, 150: 3e-6}


@pytest.mark.parametrize("epoch,lr", sorted(R50.items()))
def test_resnet50_schedule(epoch, lr):
    assert flipreid_lr(epoch, 2e-4, 2e-6) == pytest.approx(lr, rel=1e-9)


@pytest.mark.parametrize("epoch,lr", sorted(R50S.items()))
def test_resnest50_schedule(epoch, lr):
    assert flipreid_lr(epoch, 3e-4, 3e-6) == pytest.approx(lr, rel=1e-9)


def test_short_or_no_warmup():
    """warmup_epochs 1 or 0: the base LR from epoch 0; 2: the floor at 0, the base at 1."""
    for warmup in (0, 1):
        lrs = [flipreid_lr(e, 1e-3, 1e-5, warmup, drop_every=3) for e in range(5)]
        assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3 if warmup else 1e-4, 1e-4])
    lrs = [flipreid_lr(e, 1e-3, 1e-5, 2, drop_every=3) for e in range(6)]
    assert lrs == pytest.approx([1e-5, 1e-3, 1e-3, 1e-3, 1e-3, 1e-4])


def test_two_phases_restart_the_schedule():
    """20 frozen epochs, then 200 more with a second warm-up (B.4)."""
    lr = {e: phased_lr(e, 2e-4, 2e-6, frozen_epochs=20) for e in (0, 9, 19, 20, 21, 29, 59, 60)}
    assert lr == pytest.approx({0: 2e-6, 9: 2e-4, 19: 2e-4, 20: 2e-6, 21: 2.4e-5, 29: 2e-4,
                                59: 2e-4, 60: 2e-5}, rel=1e-9)
    assert phased_lr(5, 2e-4, 2e-6, frozen_epochs=0) == pytest.approx(1.12e-4)


def test_keras_l2_factor_to_weight_decay():
    assert keras_l2_to_weight_decay(5e-4) == pytest.approx(1e-3)
    assert keras_l2_to_weight_decay(1e-3) == pytest.approx(2e-3)


def test_adam_weight_decay_equals_keras_l2_in_the_loss():
    """Adam with weight_decay = 2f on L(w) takes the same steps as Adam without decay on
    L(w) + f * sum(w^2) (Keras l2 regulariser: no 1/2), because both add 2 f w to the
    gradient before the moment estimates."""
    import torch

    factor = 5e-3  # large so that a mismatch would show
    target = torch.tensor([1.0, -2.0, 0.5])

    def task(w):
        return ((w - target) ** 2 * torch.tensor([1.0, 3.0, 0.2])).sum()

    w1 = torch.nn.Parameter(torch.tensor([0.3, 0.7, -1.2]))
    w2 = torch.nn.Parameter(w1.detach().clone())
    decay = keras_l2_to_weight_decay(factor)
    decayed = torch.optim.Adam([w1], lr=0.05, eps=1e-7, weight_decay=decay)
    keras = torch.optim.Adam([w2], lr=0.05, eps=1e-7)
    for _ in range(5):
        decayed.zero_grad()
        task(w1).backward()
        decayed.step()
        keras.zero_grad()
        (task(w2) + factor * (w2 ** 2).sum()).backward()
        keras.step()
    assert torch.allclose(w1, w2, atol=1e-7)
    assert not torch.allclose(w1, torch.tensor([0.3, 0.7, -1.2]))

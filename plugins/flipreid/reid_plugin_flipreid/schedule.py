"""FlipReID's learning-rate schedule and the Keras L2 to weight-decay conversion, as pure
functions (no torch import)."""

from __future__ import annotations

import math


def flipreid_lr(epoch: int, base: float, lower_bound: float, warmup_epochs: int = 10,
                drop_every: int = 30, drop_factor: float = 10.0) -> float:
    """The official code's "default" LR mode at an epoch of one training phase.

    ``epoch < warmup_epochs``: linear from ``lower_bound`` (epoch 0) to ``base`` (epoch
    ``warmup_epochs - 1``); afterwards ``base / drop_factor ** floor((epoch -
    warmup_epochs) / drop_every)``; never below ``lower_bound``.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    if epoch < warmup_epochs - 1:
        lr = lower_bound + (base - lower_bound) * epoch / (warmup_epochs - 1)
    else:  # from epoch warmup_epochs - 1 on (epoch 0 when warmup_epochs <= 1)
        drops = max(0, math.floor((epoch - warmup_epochs) / drop_every))
        lr = base / drop_factor ** drops
    return max(lr, lower_bound)


def phased_lr(epoch: int, base: float, lower_bound: float, frozen_epochs: int = 20,
              **schedule: float) -> float:
    """The LR over both phases: the frozen-backbone phase (epochs ``< frozen_epochs``) and
    the full phase, whose schedule starts again from its epoch 0 (a second warm-up)."""
    phase_epoch = epoch if epoch < frozen_epochs else epoch - frozen_epochs
    return flipreid_lr(phase_epoch, base, lower_bound, **schedule)


def keras_l2_to_weight_decay(factor: float) -> float:
    """Keras ``l2(factor)`` adds ``factor * sum(w^2)`` to the loss (no 1/2), whose gradient
    is ``2 * factor * w``; PyTorch's coupled ``weight_decay`` adds ``weight_decay * w`` to
    the gradient. So the equivalent ``weight_decay`` is ``2 * factor``."""
    return 2.0 * factor

"""SAN's learning rates per epoch, as pure functions (no torch import).

The official ``main.py`` runs ``warm_up_epoch`` epochs with its own Adam whose LR starts at
8e-6 and is multiplied by 1.259 after every epoch (``ExponentialLR``), then the main
``max_epoch`` epochs with MultiStepLR (``stepsize`` milestones, ``gamma``) counted from 0
again. Here both phases share one epoch counter: main epoch = epoch - warm-up epochs.
"""

from __future__ import annotations

from collections.abc import Sequence


def warmup_lr(epoch: int, base: float = 8e-6, growth: float = 1.259) -> float:
    """The warm-up optimizer's LR in warm-up epoch ``epoch`` (0-based)."""
    return base * growth ** epoch


def main_lr(epoch: int, base: float = 8e-4, milestones: Sequence[int] = (40, 80, 120, 160,
                                                                          200, 240, 280),
            gamma: float = 0.5) -> float:
    """The main optimizer's LR in main-phase epoch ``epoch`` (0-based)."""
    return base * gamma ** sum(1 for m in milestones if epoch >= m)


def in_warmup(epoch: int, warmup_epochs: int) -> bool:
    return epoch < warmup_epochs

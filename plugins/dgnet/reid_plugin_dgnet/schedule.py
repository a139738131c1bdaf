"""Loss-weight ramps and LR factors as functions of the iteration (stateless, so a resumed
run gets the same values as an uninterrupted one).

The official code adds ``warm_scale`` to a weight at every iteration ``t > warm`` before
using it, so at iteration ``t`` (0-based) the weight is ``min(max, warm_scale * (t - warm))``.
"""

from __future__ import annotations

from reidcore.api import linear_ramp

from reid_plugin_dgnet.config import DGNetConfig


def ramp(step: int, warm: int, scale: float, high: float) -> float:
    """``min(high, scale * (step - warm))`` after ``warm``, 0 before."""
    if scale <= 0 or high <= 0:
        return 0.0
    return linear_ramp(step, start=warm, length=high / scale, high=high)


def loss_weights(config: DGNetConfig, step: int) -> dict[str, float]:
    """The ramped weights at iteration ``step``: code reconstruction, cycle, teacher
    (lambda_prim), fine-grained (lambda_fine = fine_w * lambda_prim)."""
    code = ramp(step, config.warm_iter, config.warm_scale, config.max_w)
    cycle = ramp(step, config.warm_iter, config.warm_scale, config.max_cyc_w)
    prim = ramp(step, config.warm_teacher_iter, config.warm_scale, config.max_teacher_w)
    return {"code": code, "cycle": cycle, "prim": prim, "fine": config.fine_w * prim}


def lr_factor(config: DGNetConfig, step: int) -> float:
    """``gamma ** (milestones passed)`` at iteration ``step`` (0-based)."""
    return config.gamma ** sum(1 for m in config.milestones if step >= m)

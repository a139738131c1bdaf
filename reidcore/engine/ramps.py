"""Loss-weight ramps: stateless functions of the training position.

A method reads the step from the engine's clock (``context.clock.step``) and asks for the
weight, so a resumed run gets the same weights as an uninterrupted one without any state
of its own (DG-Net ramps its teacher and fine-grained terms in after a warm-up)::

    w = linear_ramp(context.clock.step, start=30_000, length=20_000, high=1.0)
"""

from __future__ import annotations


def linear_ramp(step: float, start: float, length: float, high: float = 1.0,
                low: float = 0.0) -> float:
    """``low`` until ``start``, then linearly to ``high`` over ``length`` steps, then
    ``high``. ``length = 0`` is a step function at ``start``."""
    if step < start:
        return low
    if length <= 0 or step >= start + length:
        return high
    return low + (high - low) * (step - start) / length


def step_ramp(step: float, start: float, high: float = 1.0, low: float = 0.0) -> float:
    """``low`` before ``start``, ``high`` from ``start`` on (a term switched on)."""
    return high if step >= start else low

"""Step metrics summed on the device: no host-device sync per training step.

``float(loss)`` after every step makes the host wait until the GPU has finished the step,
so the host cannot queue the next step's kernels while the GPU runs this one: on a fast
GPU that wait is the gap between steps. A method may return its metrics as 0-d tensors
(``{"loss": total.detach()}``) instead; :class:`StepMetrics` adds them on their device
and turns them into Python floats only when they are read: every ``log_every`` steps and
at the end of the epoch.

Sums are kept in float64, as the Python floats they replace, and in the same order: a
CPU run gives exactly the same logged means whether its method returns floats or
tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def _as_sum(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64)
    return float(value)


def to_floats(values: Mapping[str, Any]) -> dict[str, float]:
    """Python floats (one sync per device for all tensor values, not one per value)."""
    tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor)}
    out = {k: float(v) for k, v in values.items() if not isinstance(v, torch.Tensor)}
    by_device: dict[torch.device, list[str]] = {}
    for key, tensor in tensors.items():
        by_device.setdefault(tensor.device, []).append(key)
    for keys in by_device.values():
        stacked = torch.stack([tensors[k].detach().reshape(()).to(torch.float64)
                               for k in keys]).tolist()
        out.update(zip(keys, stacked, strict=True))
    return {k: out[k] for k in values}


class StepMetrics:
    """Sums of one epoch's step metrics; see the module docstring."""

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.count = 0
        self.last: Mapping[str, Any] = {}

    def add(self, metrics: Mapping[str, Any]) -> None:
        """Add one step's metrics (floats or 0-d tensors); never syncs."""
        for key, value in metrics.items():
            value = _as_sum(value)
            self.sums[key] = value if key not in self.sums else self.sums[key] + value
        self.count += 1
        self.last = metrics

    def latest(self) -> dict[str, float]:
        """The last step's metrics as floats (syncs: call it every ``log_every`` steps)."""
        return to_floats(self.last)

    def means(self) -> dict[str, float]:
        """The epoch's means as floats (syncs once)."""
        sums = to_floats(self.sums)
        return {k: v / max(self.count, 1) for k, v in sums.items()}

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

A non-finite loss (``train.nonfinite = "stop"``) is watched without a sync too: given the
step number, :meth:`StepMetrics.add` keeps, on the device, the first step whose ``loss``
or ``loss/<term>`` values were not all finite; :meth:`StepMetrics.nonfinite` reads it (one
sync) when the engine reads the metrics anyway, and gives that step's values. A run then
stops at most ``log_every`` steps after the bad one, before any checkpoint is written
(float values are checked at once, at no cost).
"""

from __future__ import annotations

import math
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
        self.pending: dict[int, Mapping[str, Any]] = {}
        """Steps added since the last :meth:`nonfinite` check, by step number."""
        self._first_host: int | None = None
        self._first_device: torch.Tensor | None = None

    def add(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Add one step's metrics (floats or 0-d tensors); never syncs. With ``step``, its
        loss terms are watched for non-finite values."""
        for key, value in metrics.items():
            value = _as_sum(value)
            self.sums[key] = value if key not in self.sums else self.sums[key] + value
        self.count += 1
        self.last = metrics
        if step is not None:
            self._watch(metrics, step)

    def _watch(self, metrics: Mapping[str, Any], step: int) -> None:
        losses = [v for k, v in metrics.items() if k.startswith("loss")]
        if not losses:
            return
        self.pending[step] = metrics
        tensors = [v.detach().reshape(()).float() for v in losses if isinstance(v, torch.Tensor)]
        floats = [float(v) for v in losses if not isinstance(v, torch.Tensor)]
        if self._first_host is None and not all(math.isfinite(v) for v in floats):
            self._first_host = step
        if tensors:
            bad = ~torch.isfinite(torch.stack(tensors)).all()
            first = self._first_device
            if first is None:
                first = torch.full((), -1, dtype=torch.int64, device=bad.device)
            # a Python scalar in torch.where is no host-to-device copy: no sync
            self._first_device = torch.where(bad & (first < 0), step, first)

    def nonfinite(self) -> tuple[int, dict[str, float]] | None:
        """The first step with a non-finite loss term and its metrics as floats, or None
        (one sync). Steps checked are forgotten."""
        steps = [self._first_host] if self._first_host is not None else []
        if self._first_device is not None:
            found = int(self._first_device)
            if found >= 0:
                steps.append(found)
        if not steps:
            self.pending.clear()
            return None
        step = min(steps)
        return step, to_floats(self.pending.get(step, {}))

    def latest(self) -> dict[str, float]:
        """The last step's metrics as floats (syncs: call it every ``log_every`` steps)."""
        return to_floats(self.last)

    def means(self) -> dict[str, float]:
        """The epoch's means as floats (syncs once)."""
        sums = to_floats(self.sums)
        return {k: v / max(self.count, 1) for k, v in sums.items()}

"""What the loop does with a non-finite loss (``train.nonfinite``).

A non-finite loss (``loss`` or a ``loss/<term>`` of a step's metrics) stops the run
(``"stop"``), at the next read of the step metrics (every ``train.log_every`` steps and at
the epoch's end), naming the first bad step, before any checkpoint is written; or skips the
step (``"skip"``, which reads every step): its BatchNorm statistics are restored, it is
counted and logged (the optimizers skip a non-finite gradient themselves:
:class:`~reidcore.engine.context.Precision`). Skipping is for the odd bad batch: when more
than half of the last :data:`RECENT_STEPS` steps (of the steps so far, when fewer have run)
were skipped, and at least :data:`MIN_SKIPPED` of them, the run stops
(:class:`TooManySkippedError`) instead of training on nothing. Under DDP the ranks agree on a
stop at the epoch's end, in the all-reduce of the epoch means (before anything is saved).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from reidcore.engine.step_metrics import StepMetrics, to_floats
from reidcore.errors import ReidError

RECENT_STEPS = 20
"""The window of recent steps over which ``"skip"`` mode counts the skipped ones."""
MIN_SKIPPED = 4
"""Fewer skipped steps than this never stop a run (a short window is not evidence)."""


class NonFiniteLossError(ReidError):
    """Training produced a non-finite loss (``train.nonfinite = "stop"``)."""


class TooManySkippedError(NonFiniteLossError):
    """Most recent steps had a non-finite loss (``train.nonfinite = "skip"``)."""


def nonfinite_terms(metrics: Mapping[str, float]) -> list[str]:
    """The loss terms (``loss``, ``loss/<term>``) of a step's metrics that are not finite."""
    return [key for key, value in metrics.items()
            if key.startswith("loss") and not math.isfinite(value)]


class NonFinitePolicy:
    """``train.nonfinite`` over one process's run. Per epoch::

        policy.start_epoch()
        for each step:
            policy.before_step()                 # "skip": keep the BatchNorm statistics
            ...                                  # the step
            policy.after_step(metrics, sums, ...)  # adds the metrics to ``sums``
        means = policy.epoch_means(sums, all_reduce)

    ``skipped_total``: the steps skipped over the whole run (kept in checkpoints);
    ``last_checkpoint``: named by the message of a stop.
    """

    def __init__(self, mode: str, buffers: Iterable[torch.Tensor], *, distributed: bool,
                 log: Callable[[str], None]):
        self.skip = mode == "skip"
        # a skipped step must not leave its BatchNorm statistics behind either
        self.buffers = list(buffers) if self.skip else []
        self.distributed = distributed
        self.log = log
        self.skipped_total = 0
        self.last_checkpoint: Path | None = None
        self.skipped = 0
        self.first_bad: str | None = None  # under DDP: raised at the epoch's end
        self._saved: list[torch.Tensor] = []
        self._recent: deque[bool] = deque(maxlen=RECENT_STEPS)  # True: skipped
        self.too_many: str | None = None  # under DDP: raised at the epoch's end

    def start_epoch(self) -> None:
        self.skipped = 0
        self.first_bad = None
        self.too_many = None

    def before_step(self) -> None:
        if self.skip:
            self._saved = [b.clone() for b in self.buffers]

    def after_step(self, metrics: Mapping[str, Any], sums: StepMetrics, *, step: int,
                   epoch: int, index: int, steps: int, read: bool) -> None:
        """Add the metrics of ``step`` (the run's steps done, counting this one; the
        ``index``-th of the ``steps`` of ``epoch``, from 1) to ``sums``, or skip the step.
        ``read``: the sums are read now (one host sync), so a non-finite loss since the
        last read stops the run."""
        if self.skip:  # skip mode syncs every step anyway (the gradient check)
            values = to_floats(metrics)
            if nonfinite_terms(values):
                report = self.report(values, epoch, index, steps, step)
                for buffer, before in zip(self.buffers, self._saved, strict=True):
                    buffer.copy_(before)
                self.skipped += 1
                self.skipped_total += 1
                if self.skipped_total <= 10 or self.skipped_total % 100 == 0:
                    self.log(f"warning: skipped {report} (non-finite steps skipped so far: "
                             f"{self.skipped_total})")
                self._recent.append(True)
                self._check_recent(report)
            else:
                self._recent.append(False)
                sums.add(values)
            return
        sums.add(metrics, step=step)
        if read and self.first_bad is None:
            self.first_bad = self._check(sums, epoch, index, steps, step)

    def _check_recent(self, report: str) -> None:
        """Stop when most recent steps were skipped: training has diverged, and what
        would be evaluated is the last good weights' NaN-free remains at best."""
        skipped = sum(self._recent)
        if skipped < MIN_SKIPPED or 2 * skipped <= len(self._recent):
            return
        last = (f"the last good checkpoint is {self.last_checkpoint}"
                if self.last_checkpoint is not None else "no checkpoint has been saved yet")
        message = (f"training stopped: {skipped} of the last {len(self._recent)} steps had a "
                   f"non-finite loss and were skipped ({self.skipped_total} in the run; the "
                   f"latest: {report}); train.nonfinite = \"skip\" stops when more than half "
                   f"of the last {RECENT_STEPS} steps are skipped. Training has diverged: "
                   f"lower train.lr or set train.clip_grad_norm; {last}")
        if self.distributed:
            self.too_many = self.too_many or message
            return
        raise TooManySkippedError(message)

    def _check(self, sums: StepMetrics, epoch: int, index: int, steps: int,
               current: int) -> str | None:
        """The report of the first non-finite step since the last check (one sync), raised
        at once in one process; under DDP returned, and raised at the epoch's end."""
        found = sums.nonfinite()
        if found is None:
            return None
        step, values = found
        report = self.report(values, epoch, index - (current - step), steps, step)
        if self.distributed:
            return report
        raise NonFiniteLossError(self.message(report))

    def epoch_means(self, sums: StepMetrics,
                    all_reduce: Callable[[dict[str, float]], dict[str, float]]
                    ) -> dict[str, float]:
        """The epoch's mean metrics over every process (``all_reduce``); a stop agreed on
        by the processes raises :class:`NonFiniteLossError`; ``"skip"`` adds
        ``nonfinite_steps``, this epoch's skipped steps."""
        means = sums.means()
        if self.distributed:
            means["nonfinite"] = 1.0 if (self.first_bad or self.too_many) else 0.0
        means = all_reduce(means)
        if means.pop("nonfinite", 0.0) > 0:
            if self.skip:
                raise TooManySkippedError(self.too_many or "training stopped: most recent "
                                          "steps of another process had a non-finite loss")
            raise NonFiniteLossError(self.message(
                self.first_bad or "a non-finite loss in another process in this epoch"))
        if self.skip:
            means["nonfinite_steps"] = float(self.skipped)
        return means

    @staticmethod
    def report(values: Mapping[str, float], epoch: int, index: int, steps: int,
               step: int) -> str:
        terms = ", ".join(f"{key} {value:.6g}" for key, value in values.items()
                          if key.startswith("loss"))
        return (f"step {step} (epoch {epoch + 1}, batch {index} of {steps}) with a "
                f"non-finite loss: {terms}")

    def message(self, report: str) -> str:
        last = (f"the last good checkpoint is {self.last_checkpoint}"
                if self.last_checkpoint is not None else "no checkpoint has been saved yet")
        return (f"training stopped at {report}; {last} (nothing was saved after it). "
                f"Lower train.lr, set train.clip_grad_norm, or set train.nonfinite = \"skip\" "
                f"to skip such steps")

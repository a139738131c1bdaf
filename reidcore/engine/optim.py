"""Optimizers, LR schedules and the record a method's ``configure_optimizers`` returns."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import torch

from reidcore.train_config import TrainConfig


@attrs.define
class Optimization:
    """Named optimizers and their schedulers (``schedulers[name]`` steps ``optimizers[name]``).

    The engine steps every scheduler once after each training step, checkpoints all of
    them, and logs each optimizer's first-group LR as ``lr/<name>``.
    """

    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any] = attrs.field(factory=dict)


def lr_factor(t: float, config: TrainConfig) -> float:
    """The LR multiplier at (possibly fractional) epoch ``t`` (see TrainConfig's docstring)."""
    warm = config.warmup_epochs
    factor = 1.0
    if warm > 0 and t < warm:
        factor = config.warmup_factor + (1.0 - config.warmup_factor) * t / warm
    if config.schedule == "multistep":
        factor *= config.gamma ** sum(1 for m in config.milestones if t >= m)
    elif config.schedule == "cosine" and t >= warm:
        span = max(config.epochs - warm, 1e-12)
        progress = min(max((t - warm) / span, 0.0), 1.0)
        factor *= config.min_lr_factor + (1.0 - config.min_lr_factor) * 0.5 * (
            1.0 + math.cos(math.pi * progress))
    return factor


def implementation_options(impl: str, params: list[torch.nn.Parameter]) -> dict[str, bool]:
    """The optimizer keyword for ``train.optimizer_impl``: ``auto`` fuses on CUDA only (on
    a CPU, fused Adam differs from the default in the last bit: CPU runs stay as they
    were)."""
    if impl == "auto":
        on_cuda = bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)
        return {"fused": True} if on_cuda else {}
    return {"fused": {"fused": True}, "foreach": {"foreach": True},
            "for-loop": {"foreach": False}}[impl]


def make_optimizer(groups: Mapping[str, Any], config: TrainConfig, *, kind: str | None = None,
                   lr: float | None = None, weight_decay: float | None = None,
                   momentum: float | None = None, nesterov: bool = False,
                   betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                   amsgrad: bool = False) -> torch.optim.Optimizer:
    """One optimizer (``kind``: ``adam``, ``adamw``, ``sgd``; default ``train.optimizer``)
    over named parameter groups; group ``g`` gets ``lr * its lr_mult * train.lr_mult[g]``.

    A group is a list of parameters, or ``{"params": [...], "lr_mult": m,
    "weight_decay": w}`` for a method's own multiplier (DG-Net's heads at x10) or decay
    (FlipReID's GeM exponents at 0). ``lr``, ``weight_decay`` and ``momentum`` default to
    ``[train]``'s; ``nesterov`` (SGD), ``betas``, ``eps`` and ``amsgrad`` (Adam/AdamW) to
    PyTorch's. Groups keep their name (``param_group["name"]``) so freezing and logging can
    find them. Parameters with ``requires_grad=False`` (e.g. BNNeck's bias) are left out;
    every name given, an empty group's too, is kept in ``optimizer.reid_group_names``
    (what ``lr_mult`` and ``freeze`` may name: :mod:`reidcore.engine.names`).
    ``train.optimizer_impl`` chooses the kernels.
    """
    base_lr = config.lr if lr is None else lr
    decay = config.weight_decay if weight_decay is None else weight_decay
    param_groups = []
    for name, group in groups.items():
        options = dict(group) if isinstance(group, Mapping) else {"params": group}
        params = [p for p in options.pop("params") if p.requires_grad]
        multiplier = float(options.pop("lr_mult", 1.0))
        unknown = set(options) - {"weight_decay"}
        if unknown:
            raise ValueError(f"parameter group '{name}': unknown options {sorted(unknown)} "
                             f"(a group takes params, lr_mult, weight_decay)")
        if params:
            param_groups.append({"params": params, "name": name, **options,
                                 "lr": base_lr * multiplier * config.lr_mult.get(name, 1.0)})
    if not param_groups:
        raise ValueError("no trainable parameters in " + ", ".join(groups))
    kind = kind or config.optimizer
    impl = implementation_options(config.optimizer_impl,
                                  [p for g in param_groups for p in g["params"]])
    optimizer: torch.optim.Optimizer
    if kind == "sgd":
        optimizer = torch.optim.SGD(param_groups, lr=base_lr,
                                    momentum=config.momentum if momentum is None else momentum,
                                    nesterov=nesterov, weight_decay=decay, **impl)
    elif kind in ("adam", "adamw"):
        adam = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
        optimizer = adam(param_groups, lr=base_lr, betas=betas, eps=eps, weight_decay=decay,
                         amsgrad=amsgrad, **impl)
    else:
        raise ValueError(f"unknown optimizer kind '{kind}' (adam, adamw, sgd)")
    optimizer.reid_group_names = tuple(groups)  # type: ignore[union-attr]
    return optimizer


@attrs.define
class Clock:
    """Where the loop is: the engine moves it; :class:`ClockLR` reads it.

    ``epoch`` and ``index`` (steps done in that epoch, of ``length``) give the position
    ``t`` of the *next* step: whole epochs (``schedule_by = "epoch"``) or fractional."""

    epoch: int = 0
    index: int = 0
    length: int = 1

    @property
    def step(self) -> int:
        """Steps done before the next one: ``epoch * length + index``, exact when every
        epoch has ``length`` steps (``train.steps_per_epoch`` makes it so). Loss-weight
        ramps read it (:mod:`reidcore.engine.ramps`)."""
        return self.epoch * self.length + self.index

    def position(self, config: TrainConfig) -> float:
        if config.schedule_by == "epoch":
            return float(self.epoch)
        return self.epoch + self.index / max(self.length, 1)

    def ends_epoch(self, every: int, epochs: int) -> bool:
        """Whether the step now running is the last of an epoch that is an ``every``-th one
        (1-based) or the last of ``epochs``: where a method does per-N-epoch work (image
        grids) from inside ``training_step``. ``every = 0``: never."""
        if every <= 0 or self.index + 1 < self.length:
            return False
        done = self.epoch + 1
        return done % every == 0 or done == epochs

    def start_epoch(self, epoch: int, length: int) -> None:
        self.epoch, self.index, self.length = epoch, 0, max(length, 1)

    def advance(self) -> None:
        self.index += 1
        if self.index >= self.length:
            self.epoch, self.index = self.epoch + 1, 0


class ClockLR:
    """Sets every group's LR to ``initial_lr * factor(clock)``.

    Stateless (the position comes from the engine's clock, which checkpoints restore), so
    a resumed run gets exactly the LRs of an uninterrupted one. ``step()`` is called by the
    engine after each training step; ``sync()`` when the clock was moved (resume). A method
    with its own schedule (a paper's step decay, say) passes its own ``factor`` function
    and the context's clock; :func:`make_scheduler` builds the ``[train]`` one.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Callable[[Clock], float],
                 clock: Clock):
        self.optimizer, self.factor, self.clock = optimizer, factor, clock
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.sync()

    def sync(self) -> None:
        factor = self.factor(self.clock)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def step(self) -> None:
        self.sync()

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sync()


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                   clock: Clock | None = None) -> ClockLR:
    """The ``[train]`` LR schedule for ``optimizer`` (warm-up, multistep/cosine/constant)."""
    return ClockLR(optimizer, lambda now: lr_factor(now.position(config), config),
                   clock or Clock())

"""What a method's build function receives: :class:`MethodContext`.

A method spec's build function is called as ``build(config, context=MethodContext(...))``.
The context gives the resolved recipe, the registry, the number of training identities,
the device, the numeric precision helper and builders for the recipe's other sections,
so a method never parses the recipe itself::

    def build(config: MyConfig, *, context: MethodContext) -> MyMethod:
        backbone = context.build_backbone()              # recipe [backbone] (or its default)
        losses = context.build_losses(backbone.feature_dim)   # recipe [[losses]], weighted
        ...
        optimizer = context.make_optimizer({"backbone": ..., "head": ...})  # [train] settings
        scheduler = context.make_scheduler(optimizer)     # LR warm-up, steps or cosine

In ``training_step`` a method uses ``context.precision`` for mixed precision:
``with precision.autocast(): ...``, ``precision.backward(loss)`` and
``precision.step(optimizer)`` (which also clips gradients as ``train.clip_grad_norm``
says); and ``context.wrap(network)`` for the module it calls forward on, which is
DistributedDataParallel when the run has several processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import nn

from reidcore.engine.config import TrainConfig
from reidcore.registry import Kind, Registry


@attrs.define(eq=False)
class Precision:
    """Autocast, (scaled) backward and (clipped) optimizer steps for one run."""

    device: torch.device = attrs.field(factory=lambda: torch.device("cpu"))
    mode: str = "fp32"
    clip_grad_norm: float = 0.0
    scaler: Any = None

    @classmethod
    def create(cls, device: torch.device, mode: str, clip_grad_norm: float = 0.0) -> Precision:
        if device.type != "cuda":
            mode = "fp32"  # CPU autocast is slower than fp32 for these networks
        scaler = torch.amp.GradScaler("cuda") if mode == "fp16" else None
        return cls(device, mode, clip_grad_norm, scaler)

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.mode)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        if self.clip_grad_norm > 0:
            params = [p for group in optimizer.param_groups for p in group["params"]
                      if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm)
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Called by the engine once after every training step."""
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


@attrs.define(eq=False)
class MethodContext:
    """The run as a method's build function sees it (see the module docstring)."""

    recipe: Any
    registry: Registry
    num_classes: int
    steps_per_epoch: int = 1
    device: torch.device = attrs.field(factory=lambda: torch.device("cpu"))
    precision: Precision = attrs.field(factory=Precision)
    rank: int = 0
    world_size: int = 1
    clock: Any = None
    """The engine's :class:`~reidcore.engine.optim.Clock` (LR schedules read it)."""
    meta: bool = False
    """True when built for ``reid check --build`` (meta device: no memory, no data)."""

    @property
    def train(self) -> TrainConfig:
        return self.recipe.train

    def _create(self, kind: Kind, section: Any, default_name: str | None = None,
                **context: Any) -> Any:
        if section is None:
            if default_name is None:
                raise ValueError(f"the recipe has no {kind.value} section")
            return self.registry.get(kind, default_name).create(**context)
        return self.registry.get(kind, section.name).create(section.config, **context)

    def build_backbone(self, default: str = "timm") -> nn.Module:
        """The recipe's ``[backbone]`` (the ``default`` component with defaults if absent)."""
        return self._create(Kind.BACKBONE, self.recipe.backbone, default)

    def build_generator(self, role: str) -> nn.Module:
        """The recipe's ``[generators.<role>]``."""
        if role not in self.recipe.generators:
            raise ValueError(f"the recipe has no [generators.{role}] section")
        return self._create(Kind.GENERATOR, self.recipe.generators[role])

    def build_losses(self, feature_dim: int,
                     default: Sequence[tuple[str, float]] = ()) -> nn.Module:
        """The recipe's ``[[losses]]`` as a :class:`~reidcore.losses.losses.WeightedLoss`;
        the ``default`` (name, weight) pairs with default options when there are none.
        Each loss is built with the context ``num_classes`` and ``feature_dim``."""
        from reidcore.losses.losses import WeightedLoss

        names, losses, weights = [], [], []
        context = {"num_classes": self.num_classes, "feature_dim": feature_dim}
        if self.recipe.losses:
            for section in self.recipe.losses:
                names.append(section.name)
                weights.append(section.weight)
                losses.append(self._create(Kind.LOSS, section, **context))
        else:
            for name, weight in default:
                names.append(name)
                weights.append(weight)
                losses.append(self.registry.get(Kind.LOSS, name).create(**context))
        return WeightedLoss(names, losses, weights)

    def make_optimizer(self, groups: Mapping[str, Iterable[nn.Parameter]],
                       **overrides: Any) -> torch.optim.Optimizer:
        """An optimizer from ``[train]`` over named parameter groups (``lr_mult`` per name);
        ``lr``, ``weight_decay`` and ``kind`` may be overridden."""
        from reidcore.engine.optim import make_optimizer

        return make_optimizer(groups, self.train, **overrides)

    def make_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        from reidcore.engine.optim import Clock, make_scheduler

        if self.clock is None:
            self.clock = Clock(length=self.steps_per_epoch)
        return make_scheduler(optimizer, self.train, self.clock)

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` itself, or DistributedDataParallel around it in a multi-process run.
        Keep the unwrapped module for ``modules()`` (checkpoints use its keys)."""
        if self.world_size <= 1 or self.meta:
            return module
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

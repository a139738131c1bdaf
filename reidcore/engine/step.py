"""What a training step receives: :class:`StepOptimizers`, its optimizers by name.

``training_step(batch, step, optim)`` updates a network in one call, as Lightning's manual
optimization does; zero_grad, backward under the run's precision (the fp16 scaler
included), the gradient all-reduce of a multi-process run, clipping
(``train.clip_grad_norm``), the non-finite skip (``train.nonfinite = "skip"``) and the
optimizer step are the engine's::

    optim.update("discriminator", loss_d)
    with optim.frozen(discriminator):            # no gradient reaches D in this update
        optim.update(("generator", "encoder"), loss_g)

A method that needs several losses' gradients at the same weights before any step (SAN's
two updates from one forward) uses the two halves: ``optim.backward(name, loss,
retain_graph=True)`` computes the gradients of ``name``'s parameters and keeps them aside,
``optim.step(name)`` puts them in place and steps. Two optimizers may share parameters;
each steps with the gradients of its own backward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from reidcore.engine.context import Precision
from reidcore.engine.optim import Optimization
from reidcore.errors import ReidError, did_you_mean

Names = str | Sequence[str]


class StepOptimizers:
    """The method's optimizers (from ``configure_optimizers``) as its step updates them."""

    def __init__(self, optimization: Optimization, precision: Precision,
                 sync: Callable[[list[nn.Parameter]], None] | None = None):
        self.optimizers = dict(optimization.optimizers)
        self.precision = precision
        self._sync = sync
        self._pending: dict[str, dict[nn.Parameter, torch.Tensor | None]] = {}
        self.received: dict[str, set[int]] | None = None
        """With :meth:`track_gradients`: per optimizer, the ``id`` of every parameter that
        had a gradient when it stepped (what the contract checks read)."""

    # -- lookup ----------------------------------------------------------------------

    def __getitem__(self, name: str) -> torch.optim.Optimizer:
        try:
            return self.optimizers[name]
        except KeyError:
            raise ReidError(f"no optimizer '{name}'{did_you_mean(name, list(self.optimizers))}"
                            f"; configure_optimizers() named: "
                            f"{', '.join(self.optimizers)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.optimizers

    def _names(self, names: Names) -> list[str]:
        listed = [names] if isinstance(names, str) else list(names)
        for name in listed:
            self[name]  # a ReidError naming the optimizers when unknown
        return listed

    def parameters(self, name: str) -> list[nn.Parameter]:
        """The parameters ``name`` steps (those of every group, in order)."""
        return [p for group in self[name].param_groups for p in group["params"]]

    # -- updates -----------------------------------------------------------------------

    def update(self, names: Names, loss: torch.Tensor, *, retain_graph: bool = False) -> None:
        """One update of the optimizers ``names`` from ``loss``: zero their gradients,
        backward (scaled under fp16), then :meth:`step` each, in the order given."""
        listed = self._names(names)
        for name in listed:
            self.optimizers[name].zero_grad(set_to_none=True)
        self.precision.backward(loss, retain_graph=retain_graph)
        self.step(*listed)

    def backward(self, names: Names, loss: torch.Tensor, *, retain_graph: bool = False) -> None:
        """The first half: the gradients of ``loss`` w.r.t. the parameters of ``names``,
        kept for :meth:`step` (the parameters' ``.grad`` is left as it is)."""
        listed = self._names(names)
        params = list(dict.fromkeys(p for name in listed for p in self.parameters(name)
                                    if p.requires_grad))
        grads = torch.autograd.grad(self.precision.scale(loss), params,
                                    retain_graph=retain_graph, allow_unused=True)
        found = dict(zip(params, grads, strict=True))
        for name in listed:
            self._pending[name] = {p: found.get(p) for p in self.parameters(name)}

    def step(self, *names: str) -> None:
        """Step each optimizer: with the gradients its :meth:`backward` kept (cleared
        afterwards), or with the parameters' ``.grad`` after :meth:`update`'s backward;
        gradients are averaged over the run's processes first."""
        for name in self._names(list(names)):
            optimizer, pending = self.optimizers[name], self._pending.pop(name, None)
            params = self.parameters(name)
            if pending is not None:
                for param in params:
                    param.grad = pending.get(param)
            if self._sync is not None:
                self._sync([p for p in params if p.requires_grad])
            if self.received is not None:
                self.received.setdefault(name, set()).update(
                    id(p) for p in params if p.grad is not None)
            self.precision.step(optimizer)
            if pending is not None:
                for param in params:
                    param.grad = None

    @contextlib.contextmanager
    def frozen(self, *modules: nn.Module) -> Iterator[None]:
        """No gradient reaches ``modules``' parameters inside the block (a discriminator
        during the generator's update); their ``requires_grad`` is restored after it."""
        params = [p for module in modules for p in module.parameters()]
        before = [p.requires_grad for p in params]
        for param in params:
            param.requires_grad_(False)
        try:
            yield
        finally:
            for param, flag in zip(params, before, strict=True):
                param.requires_grad_(flag)

    def track_gradients(self) -> None:
        """Record which parameters had a gradient at each step (contract checks)."""
        self.received = {}

    def untrained(self) -> dict[str, list[str]]:
        """With :meth:`track_gradients`: per optimizer, ``group[index]`` names of the
        parameters that had no gradient when it stepped (or that it never stepped)."""
        received = self.received or {}
        missing: dict[str, list[str]] = {}
        for name, optimizer in self.optimizers.items():
            got = received.get(name, set())
            for g, group in enumerate(optimizer.param_groups):
                label = group.get("name", f"group{g}")
                for i, param in enumerate(group["params"]):
                    if id(param) not in got:
                        missing.setdefault(name, []).append(f"{label}[{i}] "
                                                            f"{tuple(param.shape)}")
        return missing


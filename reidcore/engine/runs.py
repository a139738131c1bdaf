"""Another run as a frozen network: DG-Net's teacher, SAN's and ARN's pretraining stages.

A run directory (:class:`~reidcore.engine.rundir.RunDirectory`) holds the resolved
``recipe.toml``, ``manifest.json`` (with the number of training identities the method was
built for) and ``checkpoints/``. Loading rebuilds the
run's method from its own recipe through the registry, reads the chosen checkpoint with
``weights_only`` (never pickled code), reports every missing or unexpected key, and
returns the networks in eval mode with ``requires_grad = False``
(:func:`reidcore.engine.context.load_run`; this module has the parts that need no
method context). The loaded networks are
not the loading method's own: leave them out of its ``modules()`` (they are not trained,
and their weights stay in the run they came from).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from reidcore.engine import checkpoint as ckpt
from reidcore.engine.rundir import RunDirectory, Which
from reidcore.errors import ReidError


class MissingRunError(ReidError):
    """A required run (teacher, pretraining stage) that has not been trained yet."""


def find_checkpoint(ref: Path, which: Which = "last") -> tuple[Path, Path]:
    """``(run directory, checkpoint file)`` for a run directory or a checkpoint file.
    ``which``: the last epoch checkpoint (the trained network) or ``best.pt``."""
    if ref.is_file():
        return ref.resolve().parent.parent, ref
    if not ref.is_dir():
        raise MissingRunError(f"no run directory or checkpoint at {ref}")
    run = RunDirectory(ref)
    path = run.checkpoint(which)
    if path is None:
        raise MissingRunError(f"run directory {ref} has no {which} checkpoint "
                              f"({run.best_checkpoint if which == 'best' else run.checkpoint_dir}"
                              f"); has it been trained?")
    return ref, path


@attrs.define(eq=False)
class LoadedRun:
    """A trained run's method, frozen (see the module docstring)."""

    run_dir: Path
    checkpoint: Path
    recipe: Any
    method: Any
    networks: dict[str, nn.Module]

    def __getitem__(self, name: str) -> nn.Module:
        try:
            return self.networks[name]
        except KeyError:
            raise ReidError(f"{self.run_dir} ({self.recipe.method.name}) has no module "
                            f"'{name}'; it has {', '.join(sorted(self.networks))}") from None

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The loaded method's retrieval embedding of ``images``."""
        return self.method.embed(images)


def load_into(method: Any, run_dir: Path, path: Path, recipe: Any,
              modules: Sequence[str] | None, device: torch.device | str) -> LoadedRun:
    """Load the checkpoint ``path`` into ``method`` (built from the run's ``recipe``): all
    of its modules or those named in ``modules``, frozen, on ``device``."""
    own = dict(method.modules())
    wanted = list(own) if modules is None else list(modules)
    unknown = [name for name in wanted if name not in own]
    if unknown:
        raise ReidError(f"{run_dir} ({recipe.method.name}) has no module "
                        f"{', '.join(repr(n) for n in unknown)}; it has {', '.join(sorted(own))}")
    data = ckpt.read(path)
    chosen = {name: own[name] for name in wanted}
    states: Mapping[str, Any] = {name: data["modules"][name] for name in wanted
                                 if name in data["modules"]}
    ckpt.load_modules(chosen, states, str(path))
    for module in chosen.values():
        module.to(device).eval().requires_grad_(False)
    return LoadedRun(run_dir=run_dir, checkpoint=path, recipe=recipe, method=method,
                     networks=chosen)


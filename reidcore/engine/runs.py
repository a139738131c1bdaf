"""Another run as a frozen network: DG-Net's teacher, SAN's and ARN's pretraining stages.

A run directory holds the resolved ``recipe.toml``, ``manifest.json`` (with the number of
training identities the method was built for) and ``checkpoints/``. Loading rebuilds the
run's method from its own recipe through the registry, reads the chosen checkpoint with
``weights_only`` (never pickled code), reports every missing or unexpected key, and
returns the networks in eval mode with ``requires_grad = False``
(:func:`reidcore.engine.context.load_run`; this module has the parts that need no
method context). The loaded networks are
not the loading method's own: leave them out of its ``modules()`` (they are not trained,
and their weights stay in the run they came from).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import torch
from torch import nn

from reidcore.engine import checkpoint as ckpt
from reidcore.errors import ReidError

Which = Literal["last", "best"]


class MissingRunError(ReidError):
    """A required run (teacher, pretraining stage) that has not been trained yet."""


def requirement_dir(run_dir: Path, role: str) -> Path:
    """Where ``reid run`` trains the requirement ``role`` of the run in ``run_dir``: the
    sibling directory ``<run dir>-<role>``."""
    return run_dir.parent / f"{run_dir.name}-{role}"


def is_completed(run_dir: Path) -> bool:
    """True when ``run_dir`` holds a run that finished (its summary says so)."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and summary.get("status") == "completed"


def find_checkpoint(ref: Path, which: Which = "last") -> tuple[Path, Path]:
    """``(run directory, checkpoint file)`` for a run directory or a checkpoint file.
    ``which``: the last epoch checkpoint (the trained network) or ``best.pt``."""
    if ref.is_file():
        return ref.resolve().parent.parent, ref
    if not ref.is_dir():
        raise MissingRunError(f"no run directory or checkpoint at {ref}")
    directory = ref / "checkpoints"
    path = directory / "best.pt" if which == "best" else ckpt.latest(directory)
    if path is None or not path.is_file():
        raise MissingRunError(f"run directory {ref} has no {which} checkpoint "
                              f"({directory / 'best.pt' if which == 'best' else directory}); "
                              f"has it been trained?")
    return ref, path


def _num_classes(run_dir: Path) -> int:
    path = run_dir / "manifest.json"
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["num_classes"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ReidError(f"cannot read the number of training identities from {path}: is "
                        f"{run_dir} a reid run directory?") from None


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


def run_recipe_file(run_dir: Path) -> Path:
    """The resolved ``recipe.toml`` of a run directory (a ReidError when absent)."""
    path = run_dir / "recipe.toml"
    if not path.is_file():
        raise ReidError(f"{run_dir} has no recipe.toml: is it a reid run directory?")
    return path


def num_classes_of(run_dir: Path) -> int:
    """The number of training identities the run's method was built for (its manifest)."""
    return _num_classes(run_dir)

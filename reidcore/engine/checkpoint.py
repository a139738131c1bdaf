"""Checkpoints: written atomically, loaded with ``weights_only``, keys checked.

A checkpoint is a dict of tensors and plain data only (so ``torch.load(weights_only=True)``
reads it; pickled code is refused)::

    {"format": 1, "epoch": E, "step": S,          # E epochs done, S steps done
     "modules": {name: state_dict}, "optimizers": {...}, "schedulers": {...},
     "precision": {...}, "rng": {...}, "best": {"metric", "value", "epoch"},
     "metrics": {...}}                             # the last evaluation's metrics

Epoch checkpoints are ``checkpoints/epoch-0005.pt`` (the last ``keep_last`` kept) and
``checkpoints/best.pt``. Each is written to a temporary file and renamed over its name,
so a kill during a save leaves the previous checkpoint intact and loadable.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reidcore.errors import ReidError
from reidcore.fileio import atomic_open
from reidcore.models.weights import state_mismatches

FORMAT = 1
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.pt$")


# --- RNG state ----------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states as tensors and plain data."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- files --------------------------------------------------------------------------------


def save(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` atomically (temporary file + rename)."""
    with atomic_open(path, "wb") as handle:
        torch.save(dict(payload), handle)


def read(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; errors name the file."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ReidError(f"checkpoint not found: {path}") from None
    except Exception as exc:
        raise ReidError(f"cannot load checkpoint {path} (only tensors and plain data are "
                        f"accepted, never pickled code): {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "modules" not in data:
        raise ReidError(f"{path} is not a reid checkpoint (format {FORMAT})")
    return data


def epoch_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of the epoch checkpoints in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _EPOCH_FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest(directory: Path) -> Path | None:
    found = epoch_checkpoints(directory)
    return found[-1][1] if found else None


def prune(directory: Path, keep_last: int) -> None:
    for _, path in epoch_checkpoints(directory)[:-keep_last]:
        path.unlink(missing_ok=True)


# --- modules ------------------------------------------------------------------------------


def load_modules(modules: Mapping[str, nn.Module], states: Mapping[str, Mapping[str, Any]],
                 source: str) -> None:
    """Load each module's state; raise one :class:`ReidError` naming every missing module,
    missing key and unexpected key (nothing is silently ignored)."""
    problems = []
    for name in sorted(set(states) - set(modules)):
        problems.append(f"unexpected module '{name}'")
    for name, module in modules.items():
        if name not in states:
            if any(True for _ in module.state_dict()):
                problems.append(f"missing module '{name}'")
            continue
        problems += [f"'{name}' {problem}"
                     for problem in state_mismatches(module.state_dict(), states[name])]
    if problems:
        raise ReidError(f"checkpoint {source} does not match the method: " + "; ".join(problems))
    for name, module in modules.items():
        if name in states:
            module.load_state_dict(states[name], strict=True)

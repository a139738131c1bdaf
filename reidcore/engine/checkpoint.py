"""Checkpoints: written atomically, loaded with ``weights_only``, keys checked.

A checkpoint is a dict of tensors and plain data only (so ``torch.load(weights_only=True)``
reads it; pickled code is refused)::

    {"format": 1, "epoch": E, "step": S,          # E epochs done, S steps done
     "modules": {name: state_dict}, "optimizers": {...}, "schedulers": {...},
     "precision": {...}, "rng": {...}, "best": {"metric", "value", "epoch"},
     "metrics": {...},                             # the last evaluation's metrics
     "nonfinite_steps": N}                         # steps skipped (train.nonfinite)

:func:`training_payload` gathers it from a training run and :func:`restore_training` puts
it back (``--resume``); where the files lie, and which one a resume reads, is the run
directory's (:class:`~reidcore.engine.rundir.RunDirectory`).

Epoch checkpoints are ``checkpoints/epoch-0005.pt`` (the last ``keep_last`` kept) and
``checkpoints/best.pt``. Each is written to a temporary file and renamed over its name,
so a kill during a save leaves the previous checkpoint intact and loadable.

Each checkpoint also carries ``"sha256"``: a digest of everything else in it (every
tensor's dtype, shape and bytes, every plain value), computed before writing and checked
on every :func:`read`. The zip container PyTorch writes has no check of its own that
``torch.load`` applies, so bytes damaged inside a tensor would otherwise load silently.
A checkpoint written before digests existed loads unverified. Pruning never deletes the
newest checkpoint that verifies (:func:`prune`), and a full disk is a
:class:`DiskFullError`, never a half-written file.
"""

from __future__ import annotations

import errno
import hashlib
import pickle
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import torch
from torch import nn

from reidcore.errors import ReidError
from reidcore.fileio import atomic_open
from reidcore.models.weights import state_mismatches

if TYPE_CHECKING:
    from reidcore.engine.context import Precision
    from reidcore.engine.optim import Optimization

FORMAT = 1
DIGEST_KEY = "sha256"
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.pt$")


# --- RNG state ----------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states as tensors and plain data."""
    np_state: Any = np.random.get_state()  # the legacy tuple (numpy types it as a union)
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


# --- integrity --------------------------------------------------------------------------


class DamagedCheckpointError(ReidError):
    """A checkpoint whose contents do not match its digest, or that cannot be read."""


class DiskFullError(ReidError):
    """No space (or quota) left to write a checkpoint; the previous file is untouched."""


def _feed(digest: Any, value: Any) -> None:
    """Hash ``value`` canonically: the same bytes before saving and after loading."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        tensor = tensor.contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}|".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, Mapping):
        digest.update(b"{")
        for key, item in value.items():
            digest.update(f"{type(key).__name__}:{key!r}=".encode())
            _feed(digest, item)
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):  # one form: a tuple may load back as a list
        digest.update(b"[")
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def payload_digest(payload: Mapping[str, Any]) -> str:
    """SHA-256 of a checkpoint's contents (its own ``sha256`` entry left out)."""
    digest = hashlib.sha256()
    _feed(digest, {key: value for key, value in payload.items() if key != DIGEST_KEY})
    return digest.hexdigest()


def _disk_full(exc: BaseException) -> OSError | None:
    """The ENOSPC/EDQUOT error behind ``exc``: torch.save wraps a failed write of its zip
    writer in ``RuntimeError('[enforce fail at inline_container.cc] ...')``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return current
        current = current.__cause__ or current.__context__
    return None


def _free_space(directory: Path) -> str:
    try:
        free: float = shutil.disk_usage(directory).free
    except OSError:
        return "unknown"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if free < 1024 or unit == "GiB":
            return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
        free /= 1024
    return "unknown"  # pragma: no cover


# --- files --------------------------------------------------------------------------------


def save(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` with its digest, atomically (temporary file + rename). A full
    disk raises :class:`DiskFullError`; the file previously at ``path`` stays as it was."""
    data = dict(payload)
    data[DIGEST_KEY] = payload_digest(data)
    try:
        with atomic_open(path, "wb") as handle:
            torch.save(data, handle)
    except (OSError, RuntimeError) as exc:
        full = _disk_full(exc)
        if full is None:
            raise
        reason = "disk quota exceeded" if full.errno == errno.EDQUOT else "no space left"
        raise DiskFullError(
            f"disk full: cannot write checkpoint {path} ({reason} on the file system of "
            f"{path.parent}, {_free_space(path.parent)} free); nothing was replaced, the "
            f"file there before is intact") from None


def read(path: Path, verify: bool = True) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and check its digest; errors name the
    file (:class:`DamagedCheckpointError` when the contents do not match)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ReidError(f"checkpoint not found: {path}") from None
    except pickle.UnpicklingError as exc:
        raise DamagedCheckpointError(
            f"cannot load checkpoint {path}: it holds more than tensors and plain data (never "
            f"pickled code is loaded) or is damaged: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    except Exception as exc:
        raise DamagedCheckpointError(
            f"cannot load checkpoint {path}: the file is damaged or not a checkpoint "
            f"(only tensors and plain data are accepted, never pickled code): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "modules" not in data:
        raise ReidError(f"{path} is not a reid checkpoint (format {FORMAT})")
    expected = data.pop(DIGEST_KEY, None)
    if verify and expected is not None and payload_digest(data) != expected:
        raise DamagedCheckpointError(
            f"checkpoint {path} is damaged: its contents do not match the SHA-256 digest "
            f"written with it")
    return data


def verifies(path: Path) -> bool:
    """Whether ``path`` reads as a checkpoint whose contents match its digest."""
    try:
        read(path)
    except ReidError:
        return False
    return True


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


def newest_verified(directory: Path) -> Path | None:
    """The newest epoch checkpoint that reads and matches its digest (None if none does)."""
    for _, path in reversed(epoch_checkpoints(directory)):
        if verifies(path):
            return path
    return None


def prune(directory: Path, keep_last: int) -> list[Path]:
    """Delete all but the last ``keep_last`` epoch checkpoints, never the newest one that
    verifies (checked newest first: normally the one just written, read back once).
    Returns the deleted paths."""
    found = epoch_checkpoints(directory)
    doomed = [path for _, path in found[:-keep_last]]
    if not doomed:
        return []
    keep = newest_verified(directory)
    deleted = []
    for path in doomed:
        if path != keep:
            path.unlink(missing_ok=True)
            deleted.append(path)
    return deleted


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


# --- a training run's state -----------------------------------------------------------------


def training_payload(*, epoch: int, step: int, modules: Mapping[str, nn.Module],
                     optimization: Optimization, precision: Precision,
                     best: Mapping[str, Any], metrics: Mapping[str, float],
                     nonfinite_steps: int) -> dict[str, Any]:
    """The checkpoint of a training run after ``epoch`` epochs and ``step`` steps (see the
    module docstring), the RNG states included."""
    return {
        "format": FORMAT, "epoch": epoch, "step": step,
        "modules": {n: m.state_dict() for n, m in modules.items()},
        "optimizers": {n: o.state_dict() for n, o in optimization.optimizers.items()},
        "schedulers": {n: s.state_dict() for n, s in optimization.schedulers.items()},
        "precision": precision.state_dict(), "rng": rng_state(),
        "best": dict(best), "metrics": dict(metrics),
        "nonfinite_steps": nonfinite_steps,
    }


@attrs.frozen
class ResumePoint:
    """Where a restored training run goes on: epochs and steps done, the best metric so
    far, the last evaluation's metrics, the non-finite steps skipped."""

    epoch: int
    step: int
    best: dict[str, Any]
    metrics: dict[str, float]
    nonfinite_steps: int


def restore_training(data: Mapping[str, Any], path: Path, *, modules: Mapping[str, nn.Module],
                     optimization: Optimization, precision: Precision,
                     best: Mapping[str, Any]) -> ResumePoint:
    """Load the checkpoint ``data`` (read from ``path``) into the modules, optimizers,
    schedulers and precision of a training run and set the RNG states; ``best``: the best
    record to keep when the checkpoint has none. Every mismatch is a :class:`ReidError`."""
    load_modules(modules, data["modules"], str(path))
    for kind, owners in (("optimizers", optimization.optimizers),
                         ("schedulers", optimization.schedulers)):
        saved = data.get(kind, {})
        if set(saved) != set(owners):
            raise ReidError(f"checkpoint {path} has {kind} {sorted(saved)} but the method "
                            f"has {sorted(owners)}")
        for name, owner in owners.items():
            owner.load_state_dict(saved[name])
    precision.load_state_dict(data.get("precision", {}))
    set_rng_state(data["rng"])
    return ResumePoint(epoch=int(data["epoch"]), step=int(data["step"]),
                       best=dict(data.get("best", best)),
                       metrics=dict(data.get("metrics", {})),
                       nonfinite_steps=int(data.get("nonfinite_steps", 0)))

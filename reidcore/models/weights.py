"""Loading weights from local files, refusing pickled code and reporting key mismatches."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reidcore.errors import ReidError

_LOADING_ENABLED = contextvars.ContextVar("reid_weight_loading", default=True)


@contextlib.contextmanager
def no_weight_loading() -> Iterator[None]:
    """Inside this block components build with random weights: no weights file is read and
    nothing is downloaded. ``reid check --build`` builds on the meta device this way, where
    weights could not be stored anyway, so a recipe that names hub or local weights builds
    offline and instantly."""
    token = _LOADING_ENABLED.set(False)
    try:
        yield
    finally:
        _LOADING_ENABLED.reset(token)


def weight_loading_enabled() -> bool:
    """False inside :func:`no_weight_loading`: a component that loads pretrained weights
    (from a file or a hub) checks this first and skips the loading when it is False."""
    return _LOADING_ENABLED.get()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file or a ``.pth``/``.pt`` file (``weights_only``).

    A ``.pth`` holding ``{"state_dict": ...}`` or ``{"model": ...}`` is unwrapped. A file
    that cannot be read (truncated, not the format its suffix says) is a :class:`ReidError`
    naming it, never a traceback from the reading library.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ReidError(f"weights file not found: {path}")
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path)
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError for pickled code, and corrupt files
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise ReidError(f"cannot load weights from {path} (only tensors are accepted, never "
                        f"pickled code): {type(exc).__name__}: {first_line}") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(data, Mapping) and key in data and isinstance(data[key], Mapping):
            data = data[key]
            break
    if not isinstance(data, Mapping):
        raise ReidError(f"{path} does not hold a state dict (got {type(data).__name__})")
    return {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except Exception as exc:  # SafetensorError (bad header, truncated data), OSError, ...
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise ReidError(f"cannot load weights from {path}: not a valid .safetensors file "
                        f"({type(exc).__name__}: {first_line}); is it truncated, or another "
                        "format saved under this suffix?") from None


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(key.startswith(prefix) for key in state):
        return {key[len(prefix):]: value for key, value in state.items()}
    return dict(state)


def _summarise(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def state_mismatches(own: Mapping[str, torch.Tensor],
                     state: Mapping[str, torch.Tensor]) -> list[str]:
    """Missing, unexpected and wrongly shaped keys of ``state`` against a module's own
    state_dict ``own``, as messages (empty when they match); shared by weights files and
    checkpoints so that both report mismatches the same way."""
    shape_errors = [f"{k} (file {tuple(v.shape)}, model {tuple(own[k].shape)})"
                    for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    problems = []
    if missing:
        problems.append(f"missing keys: {_summarise(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_summarise(unexpected)}")
    if shape_errors:
        problems.append(f"wrong shapes: {_summarise(shape_errors)}")
    return problems


def load_weights(module: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                 ignore_unexpected: Iterable[str] = ()) -> None:
    """Load ``state`` into ``module``; raise :class:`ReidError` naming missing, unexpected
    and wrongly shaped keys. Unexpected keys starting with a prefix in
    ``ignore_unexpected`` (e.g. an ImageNet classifier ``fc.``) are dropped silently."""
    state = strip_prefix(state, "module.")
    ignore = tuple(ignore_unexpected)
    own = module.state_dict()
    state = {k: v for k, v in state.items()
             if not (ignore and k.startswith(ignore) and k not in own)}
    problems = state_mismatches(own, state)
    if problems:
        raise ReidError(f"weights from {source} do not match {type(module).__name__}: "
                        + "; ".join(problems))
    module.load_state_dict(state, strict=True)

"""``reid import``: read a foreign checkpoint, map it (:mod:`~reidcore.importers.mapping`),
load it into the reid network its recipe builds, and write a run directory that
``reid eval --run``, ``reid extract`` and ``reid export`` read like a trained one::

    RUN_DIR/recipe.toml               the resolved recipe (the architecture, its input size,
                                      normalisation and distance; no data sets)
    RUN_DIR/manifest.json             num_classes (the classifier's rows) and the import
    RUN_DIR/checkpoints/epoch-0000.pt a reid checkpoint (no reid epochs trained)
    RUN_DIR/import.json               every source key: the reid key it loads into, or why
                                      it is only checked; every reid key set from the
                                      architecture

The directory is built beside ``RUN_DIR`` and renamed into place, so a failed import
leaves nothing half-written; an existing ``RUN_DIR`` is refused unless ``replace``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from reidcore.errors import ReidError
from reidcore.importers.mapping import (
    Architecture,
    MappedState,
    expected_source_keys,
    find_architecture,
    map_state,
    num_classes_of,
)

FRAMEWORKS = ("torchreid", "fastreid")
IMPORT_RECORD = "import.json"


def architectures(framework: str, state: Mapping[str, torch.Tensor] | None = None
                  ) -> dict[str, Architecture]:
    """The architectures of ``framework`` (fast-reid's classifier key read from ``state``)."""
    if framework == "torchreid":
        from reidcore.importers import torchreid

        return torchreid.architectures()
    if framework == "fastreid":
        from reidcore.importers import fastreid

        key = next((k for k in fastreid.CLASSIFIER_KEYS if state and k in state),
                   fastreid.CLASSIFIER_KEYS[0])
        archs = fastreid.architectures(key)
        return {**archs, **{alias: archs[name] for alias, name in fastreid.ALIASES.items()}}
    from reidcore.errors import did_you_mean

    raise ReidError(f"unknown framework '{framework}'{did_you_mean(framework, FRAMEWORKS)}; "
                    f"reid imports {', '.join(FRAMEWORKS)}")


def read_foreign_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a torchreid / fast-reid checkpoint: unwrapped from ``state_dict`` /
    ``model``, ``module.`` (DataParallel) stripped. Read with ``weights_only``; NumPy
    scalars (torchreid stores ``rank1`` as one) are allowed, pickled code is not."""
    import numpy as np

    from reidcore.models.weights import read_state_dict, strip_prefix

    allowed: list[Any] = [np.dtype, np.float64, np.float32, np.int64]
    with contextlib.suppress(AttributeError, ImportError):
        allowed.append(np._core.multiarray.scalar)  # type: ignore[attr-defined]
    with contextlib.suppress(AttributeError):
        allowed += [np.dtypes.Float64DType, np.dtypes.Float32DType, np.dtypes.Int64DType]
    with torch.serialization.safe_globals(allowed):
        state = read_state_dict(path)
    if not state:
        raise ReidError(f"{path} holds no tensors: is it a torchreid or fast-reid checkpoint?")
    return strip_prefix(state, "module.")


def _build(recipe: Any, registry: Any, num_classes: int, meta: bool
           ) -> tuple[dict[str, dict[str, torch.Tensor]], Any]:
    """``(module name -> state dict, method)`` of the recipe's method."""
    from reidcore.engine.context import build_method

    method = build_method(recipe, registry, num_classes, meta=meta)
    return {name: module.state_dict() for name, module in method.modules().items()}, method


def _resolve(arch: Architecture, plugins: Any, overrides: Sequence[str]) -> Any:
    from reidcore.recipe import resolve

    return resolve(arch.recipe, f"<{arch.label}>", plugins.registry, plugins.hook, overrides)


def _other_keys(framework: str, state: Mapping[str, torch.Tensor], plugins: Any
                ) -> Callable[[], dict[str, dict[str, torch.Tensor]]]:
    def compute() -> dict[str, dict[str, torch.Tensor]]:
        found = {}
        classes = 1
        for name, arch in architectures(framework, state).items():
            classes = num_classes_of(arch, state) or classes
            states, _ = _build(_resolve(arch, plugins, ()), plugins.registry, classes, True)
            found[name] = expected_source_keys(arch, states)
        return found
    return compute


def map_checkpoint(framework: str, path: Path, arch_name: str, plugins: Any,
                   overrides: Sequence[str] = ()) -> tuple[Any, Any, MappedState, int]:
    """``(recipe, method, mapped, num_classes)``: the checkpoint at ``path`` mapped onto and
    loaded into a freshly built reid method (strict: every key checked)."""
    from reidcore.engine import checkpoint as ckpt

    archs = architectures(framework)  # an unknown --arch is refused before the file is read
    find_architecture(arch_name, archs, framework)
    state = read_foreign_checkpoint(path)
    arch = find_architecture(arch_name, architectures(framework, state), framework)
    recipe = _resolve(arch, plugins, overrides)
    num_classes = num_classes_of(arch, state) or 1
    states, method = _build(recipe, plugins.registry, num_classes, False)
    mapped = map_state(arch, state, states, str(path), _other_keys(framework, state, plugins))
    ckpt.load_modules(method.modules(), mapped.modules, f"the import of {path}")
    for module in method.modules().values():
        module.eval()
    return recipe, method, mapped, num_classes


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_checkpoint(framework: str, path: str | Path, arch: str, out: str | Path, *,
                      plugins: Any, overrides: Sequence[str] = (),
                      replace: bool = False) -> dict[str, Any]:
    """Import ``path`` (a ``framework`` checkpoint of architecture ``arch``) as the run
    directory ``out``; returns the import record (also written as ``import.json``)."""
    from reidcore.engine import checkpoint as ckpt
    from reidcore.engine.logging import manifest
    from reidcore.engine.rundir import RunDirectory
    from reidcore.recipe import to_dict, write_resolved

    path, out = Path(path).expanduser(), Path(out).expanduser()
    if out.exists() and not replace and (not out.is_dir() or any(out.iterdir())):
        raise ReidError(f"{out} exists and is not empty; choose another --out or pass "
                        f"--replace to overwrite it")
    recipe, method, mapped, num_classes = map_checkpoint(framework, path, arch, plugins,
                                                         overrides)
    record = {**mapped.record, "checkpoint": str(path.resolve()), "sha256": _sha256(path),
              "num_classes": num_classes}
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.importing-", dir=out.parent))
    try:
        run = RunDirectory(staging)
        write_resolved(recipe, run.recipe_file)
        run.manifest_file.write_text(json.dumps(
            manifest(to_dict(recipe), plugins, {}, {"num_classes": num_classes,
                                                    "imported": {k: record[k] for k in (
                                                        "framework", "arch", "checkpoint",
                                                        "sha256")}}),
            indent=2, default=str), encoding="utf-8")
        (staging / IMPORT_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
        run.checkpoint_dir.mkdir()
        ckpt.save(run.epoch_checkpoint(0), {
            "format": ckpt.FORMAT, "epoch": 0, "step": 0,
            "modules": {name: module.state_dict() for name, module in method.modules().items()},
            "optimizers": {}, "schedulers": {}, "best": {}, "metrics": {},
            "imported": {k: record[k] for k in ("framework", "arch", "sha256")}})
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return record

"""Running a resolved recipe: the run directory, the processes, and the lifecycle hooks.

What a run directory holds, and what it says about its run, is
:class:`~reidcore.engine.rundir.RunDirectory`'s; ``run.lock`` is held while a run owns
the directory (:mod:`reidcore.engine.lock`). The loop itself is
:class:`~reidcore.engine.trainer.Trainer`; evaluation helpers are in
:mod:`reidcore.engine.evaluate` (both re-exported here).

``--resume`` continues the recipe the directory was trained with: a different recipe is
refused with the differing keys, unless ``allow_recipe_change`` and every difference is
one of :data:`~reidcore.engine.rundir.SAFE_RESUME_CHANGES` (keys that change how long or
how visibly the run goes on, not what its checkpoints mean); the changes are then recorded
in ``manifest.json`` (:meth:`~reidcore.engine.rundir.RunDirectory.resume_changes`).
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from reidcore.engine import distributed
from reidcore.engine.evaluate import (  # noqa: F401 - re-exported
    evaluate_test_sets,
    extract_features,
    keep_rng_states,
    keep_torch_threads,
    set_train_mode,
)
from reidcore.engine.lock import RunLock
from reidcore.engine.logging import write_json
from reidcore.engine.rundir import RunDirectory
from reidcore.engine.trainer import (  # noqa: F401 - re-exported
    Trainer,
    apply_freeze,
    build_dataset,
    resolve_device,
    section_names,
    seed_everything,
)
from reidcore.errors import ReidError
from reidcore.records import RunInfo


def default_run_dir(recipe_name: str) -> Path:
    return Path("runs") / f"{recipe_name}-{time.strftime('%Y%m%d-%H%M%S')}"


# --- entry points -------------------------------------------------------------------------


def _run_process(recipe: Any, plugins: Any, run_dir: Path, resume: bool,
                 quiet: bool = False, plugin_loader: Any = None,
                 recipe_changes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    if plugins is None:  # a spawned DDP process loads the plugins itself
        plugins = plugin_loader()
    info = distributed.from_environment()
    trainer = Trainer(recipe, plugins, run_dir, resume, info, quiet=quiet or not info.is_main,
                      recipe_changes=recipe_changes)
    run_info = RunInfo(run_dir=str(run_dir), recipe=recipe, resumed=resume)
    started = False
    try:
        trainer.setup()
        run_info = trainer.info
        if info.is_main:
            plugins.hook.reid_run_start(run=run_info)
            started = True
        summary = trainer.fit()
    except BaseException as exc:
        if started:
            failed = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                      "run_dir": str(run_dir),
                      "nonfinite_steps": getattr(getattr(trainer, "nonfinite", None),
                                                 "skipped_total", 0)}
            with contextlib.suppress(Exception):
                write_json(RunDirectory(run_dir).summary_file,
                           {**failed, "traceback": traceback.format_exc()})
            with contextlib.suppress(Exception):
                plugins.hook.reid_run_end(run=run_info, summary=failed)
        raise
    finally:
        trainer.close()
    if info.is_main:
        plugins.hook.reid_run_end(run=run_info, summary=summary)
    return summary


def _run_dir(out: Path | None, resume: bool, recipe_name: str) -> Path:
    if resume and out is None:
        raise ReidError("--resume needs --out DIR: the run directory to continue")
    return Path(out) if out is not None else default_run_dir(recipe_name)


def prepare_run_dir(out: Path | None, resume: bool, recipe_name: str) -> Path:
    run_dir = _run_dir(out, resume, recipe_name)
    if not resume and RunDirectory(run_dir).started:
        raise ReidError(f"run directory {run_dir} already holds checkpoints; continue it with "
                        f"--resume or choose another --out")
    return run_dir


@contextlib.contextmanager
def claim_run_dir(recipe: Any, out: Path | None, resume: bool, recipe_name: str,
                  allow_recipe_change: bool = False, quiet: bool = False,
                  registry: Any = None) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """Lock the run directory, then check it: ``(run directory, recipe changes)``. The
    checks come after the lock, so no other run can change what they saw."""
    with RunLock(_run_dir(out, resume, recipe_name)) as lock:
        if lock.stale is not None and not quiet:
            print(lock.stale_message(), flush=True)
        run_dir = prepare_run_dir(out, resume, recipe_name)
        files = RunDirectory(run_dir)
        changes = (files.resume_changes(recipe, allow_recipe_change, registry)
                   if resume else [])
        if resume:
            files.check_epochs(recipe.train.epochs)
        for leftover in files.remove_leftovers():
            if not quiet:
                print(f"removed {leftover}, left by an interrupted write", flush=True)
        yield run_dir, changes


def run_recipe(recipe: Any, plugins: Any, out: Path | None = None, resume: bool = False,
               recipe_name: str = "recipe", *, nproc: int = 1,
               quiet: bool = False, allow_recipe_change: bool = False) -> dict[str, Any]:
    """Train and evaluate ``recipe``; return the summary (``summary["metrics"]`` holds the
    final metrics per test set). ``nproc > 1`` spawns DDP processes (gloo on CPU).
    ``allow_recipe_change``: with ``resume``, accept the
    :data:`~reidcore.engine.rundir.SAFE_RESUME_CHANGES`."""
    env = distributed.from_environment()
    if env.enabled and nproc > 1:
        raise ReidError("--nproc cannot be used under torchrun (it already starts the processes)")
    if env.enabled:
        # under torchrun every rank must agree on the directory: rank 0 claims it (named
        # from --out or a time stamp) after the process group exists and tells the others
        device = resolve_device(recipe.train.device, env.local_rank)
        distributed.init_process_group(env, device)
        with contextlib.ExitStack() as stack:
            claimed: dict[str, Any] | None = None
            if env.is_main:
                try:
                    run_dir, changes = stack.enter_context(claim_run_dir(
                        recipe, out, resume, recipe_name, allow_recipe_change, quiet,
                        plugins.registry))
                    claimed = {"run_dir": str(run_dir), "changes": changes}
                except ReidError as exc:
                    claimed = {"error": str(exc)}
            claimed = distributed.broadcast_object(env, claimed)
            if "error" in claimed:
                raise ReidError(claimed["error"])
            return _run_process(recipe, plugins, Path(claimed["run_dir"]), resume, quiet,
                                recipe_changes=claimed["changes"])
    with claim_run_dir(recipe, out, resume, recipe_name, allow_recipe_change,
                       quiet, plugins.registry) as (run_dir, changes):
        if nproc > 1:
            if recipe.train.device == "cuda" or (recipe.train.device == "auto"
                                                 and torch.cuda.is_available()):
                if torch.cuda.device_count() < nproc:
                    raise ReidError(f"--nproc {nproc} needs {nproc} CUDA devices, found "
                                    f"{torch.cuda.device_count()}")
            os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
            summary = distributed.spawn(nproc, _run_process, recipe, None, run_dir, resume,
                                        quiet, plugins.loader(), changes)
            if summary is None:
                raise ReidError("the distributed run ended without a result from rank 0")
            return summary
        return _run_process(recipe, plugins, run_dir, resume, quiet, recipe_changes=changes)

"""Running a resolved recipe: the run directory, the processes, and the lifecycle hooks.

A run directory holds ``recipe.toml`` (the resolved recipe, runnable as is),
``manifest.json``, ``metrics.jsonl``, ``tb/`` (TensorBoard), ``checkpoints/``,
``ranked_<testset>.png``, ``images/`` (pictures a method logs) and ``summary.json``. The
loop itself is :class:`~reidcore.engine.trainer.Trainer`; evaluation helpers are in
:mod:`reidcore.engine.evaluate` (both re-exported here).
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from reidcore.engine import checkpoint as ckpt
from reidcore.engine import distributed
from reidcore.engine.evaluate import (  # noqa: F401 - re-exported
    evaluate_test_sets,
    extract_features,
    keep_rng_states,
    keep_torch_threads,
    set_train_mode,
)
from reidcore.engine.logging import write_json
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
                 quiet: bool = False, plugin_loader: Any = None) -> dict[str, Any]:
    if plugins is None:  # a spawned DDP process loads the plugins itself
        plugins = plugin_loader()
    info = distributed.from_environment()
    trainer = Trainer(recipe, plugins, run_dir, resume, info, quiet=quiet or not info.is_main)
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
                      "run_dir": str(run_dir)}
            with contextlib.suppress(Exception):
                write_json(run_dir / "summary.json",
                           {**failed, "traceback": traceback.format_exc()})
            with contextlib.suppress(Exception):
                plugins.hook.reid_run_end(run=run_info, summary=failed)
        raise
    finally:
        trainer.close()
    if info.is_main:
        plugins.hook.reid_run_end(run=run_info, summary=summary)
    return summary


def prepare_run_dir(out: Path | None, resume: bool, recipe_name: str) -> Path:
    if resume and out is None:
        raise ReidError("--resume needs --out DIR: the run directory to continue")
    run_dir = Path(out) if out is not None else default_run_dir(recipe_name)
    if not resume and ckpt.latest(run_dir / "checkpoints") is not None:
        raise ReidError(f"run directory {run_dir} already holds checkpoints; continue it with "
                        f"--resume or choose another --out")
    return run_dir


def run_recipe(recipe: Any, plugins: Any, out: Path | None = None, resume: bool = False,
               recipe_name: str = "recipe", *, nproc: int = 1,
               quiet: bool = False) -> dict[str, Any]:
    """Train and evaluate ``recipe``; return the summary (``summary["metrics"]`` holds the
    final metrics per test set). ``nproc > 1`` spawns DDP processes (gloo on CPU)."""
    env = distributed.from_environment()
    if env.enabled and nproc > 1:
        raise ReidError("--nproc cannot be used under torchrun (it already starts the processes)")
    if env.enabled:
        # under torchrun every rank must agree on the directory: name it from --out or a
        # time stamp broadcast by rank 0 after the process group exists
        device = resolve_device(recipe.train.device, env.local_rank)
        distributed.init_process_group(env, device)
        run_dir = distributed.broadcast_object(
            env, str(prepare_run_dir(out, resume, recipe_name)) if env.is_main else None)
        return _run_process(recipe, plugins, Path(run_dir), resume, quiet)
    run_dir = prepare_run_dir(out, resume, recipe_name)
    if nproc > 1:
        if recipe.train.device == "cuda" or (recipe.train.device == "auto"
                                             and torch.cuda.is_available()):
            if torch.cuda.device_count() < nproc:
                raise ReidError(f"--nproc {nproc} needs {nproc} CUDA devices, found "
                                f"{torch.cuda.device_count()}")
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
        summary = distributed.spawn(nproc, _run_process, recipe, None, run_dir, resume, quiet,
                                    plugins.loader())
        if summary is None:
            raise ReidError("the distributed run ended without a result from rank 0")
        return summary
    return _run_process(recipe, plugins, run_dir, resume, quiet)

"""Running a resolved recipe: the run directory, lifecycle hooks, and the training loop.

The engine owns the loop (device, precision, DDP, checkpoints, logging, evaluation
schedule, hooks); the method owns its networks, optimizers and step. One epoch::

    clock.start_epoch(epoch, len(loader))
    for batch in loader:
        metrics = method.training_step(batch, step)   # backward + optimizer steps inside
        precision.update(); clock.advance(); every scheduler.step()

Evaluation runs every ``train.eval_every`` epochs and after the last one, on every test
set (rank 0 only), with flip test-time augmentation when the evaluator's config says
``flip = true``. A run directory holds ``recipe.toml`` (the resolved recipe, runnable as
is), ``manifest.json``, ``metrics.jsonl``, ``tb/`` (TensorBoard), ``checkpoints/``,
``ranked_<testset>.png`` and ``summary.json``.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reidcore.engine import checkpoint as ckpt
from reidcore.engine import distributed
from reidcore.engine.context import MethodContext, Precision
from reidcore.engine.distributed import DistInfo
from reidcore.engine.logging import (
    Progress,
    RunLogger,
    dataset_fingerprint,
    format_duration,
    manifest,
    summary_table,
    write_json,
)
from reidcore.engine.optim import Clock, Optimization
from reidcore.errors import ReidError
from reidcore.records import FeatureSet, RunInfo
from reidcore.registry import Kind

# --- small helpers ------------------------------------------------------------------------


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with ``deterministic``, ask cuDNN for determinism."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ReidError("train.device = \"cuda\" but no CUDA device is available "
                            "(use device = \"auto\" or \"cpu\")")
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device("cpu")


def default_run_dir(recipe_name: str) -> Path:
    return Path("runs") / f"{recipe_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def section_names(sections: Sequence[Any]) -> list[str]:
    """Names for test sets: the component name, with ``-<index>`` when it repeats."""
    names = [s.name for s in sections]
    return [n if names.count(n) == 1 else f"{n}-{i}" for i, n in enumerate(names)]


def build_dataset(registry: Any, section: Any) -> Any:
    return registry.get(Kind.DATASET, section.name).create(section.config)


def set_train_mode(modules: Mapping[str, torch.nn.Module], training: bool) -> None:
    for module in modules.values():
        module.train(training)


def apply_freeze(optimization: Optimization, groups: Sequence[str], frozen: bool) -> None:
    """(Un)freeze the parameters of the named optimizer groups."""
    for optimizer in optimization.optimizers.values():
        for group in optimizer.param_groups:
            if group.get("name") in groups:
                for param in group["params"]:
                    param.requires_grad_(not frozen)


@contextlib.contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Restore torch's intra-op thread count after the block. The numba ranking kernels
    run on the same OpenMP runtime as torch and set its thread count to numba's own when
    they launch, so a run started with one torch thread would train on two after its
    first evaluation: results then depended on when (and whether) it evaluated."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


@torch.no_grad()
def extract_features(method: Any, loader: Any, device: torch.device, flip: bool = False,
                     precision: Precision | None = None,
                     channels_last: bool = False) -> torch.Tensor:
    """Embeddings of every image of ``loader`` (in order), float32 on the CPU.
    With ``flip``, the mean of the embeddings of each image and its horizontal flip."""
    precision = precision or Precision()
    parts = []
    for batch in loader:
        images = batch["images"].to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with precision.autocast():
            features = method.embed(images).float()
            if flip:
                features = (features + method.embed(images.flip(3)).float()) / 2
        parts.append(features.cpu())
    return torch.cat(parts) if parts else torch.empty(0)


def evaluate_test_sets(method: Any, evaluator: Any, test_sets: Sequence[Any],
                       device: torch.device, flip: bool, precision: Precision | None = None,
                       channels_last: bool = False
                       ) -> tuple[dict[str, float], dict[str, tuple[FeatureSet, FeatureSet]]]:
    """Metrics ``<testset>/<metric>`` for every test set, and the feature sets."""
    set_train_mode(method.modules(), False)
    metrics: dict[str, float] = {}
    features: dict[str, tuple[FeatureSet, FeatureSet]] = {}
    for test in test_sets:
        query = FeatureSet(extract_features(method, test.query, device, flip, precision,
                                            channels_last),
                           test.query_pids, test.query_camids,
                           tuple(r.path for r in test.query_records))
        gallery = FeatureSet(extract_features(method, test.gallery, device, flip, precision,
                                              channels_last),
                             test.gallery_pids, test.gallery_camids,
                             tuple(r.path for r in test.gallery_records))
        with keep_torch_threads():
            scores = evaluator.evaluate(query, gallery)
        for key, value in scores.items():
            metrics[f"{test.name}/{key}"] = float(value)
        features[test.name] = (query, gallery)
    return metrics, features


# --- the trainer --------------------------------------------------------------------------


class Trainer:
    """One process's part of a run (see the module docstring)."""

    def __init__(self, recipe: Any, plugins: Any, run_dir: Path, resume: bool,
                 dist_info: DistInfo, quiet: bool = False):
        self.recipe = recipe
        self.plugins = plugins
        self.registry = plugins.registry
        self.hook = plugins.hook
        self.run_dir = run_dir
        self.resume = resume
        self.dist = dist_info
        self.quiet = quiet
        self.train_cfg = recipe.train
        self.device = resolve_device(self.train_cfg.device, dist_info.local_rank)
        self.checkpoint_dir = run_dir / "checkpoints"
        self.step = 0
        self.start_epoch = 0
        self.best: dict[str, Any] = {"metric": self.train_cfg.best_metric, "value": None,
                                     "epoch": None}
        self.last_metrics: dict[str, float] = {}

    # -- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        from reidcore.data.loaders import build_test_loaders, build_train_loader

        recipe, cfg = self.recipe, self.train_cfg
        distributed.init_process_group(self.dist, self.device)
        seed_everything(recipe.seed, cfg.deterministic)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logger = RunLogger(self.run_dir, enabled=self.dist.is_main, quiet=self.quiet)

        # data: rank 0 first (the synthetic dataset generates itself), then the others
        if not recipe.data.source:
            raise ReidError("the recipe has no [[data.source]] dataset to train on")
        started = time.perf_counter()
        splits: dict[str, list[Any]] = {}
        for turn in (0, 1):
            if (turn == 0) == self.dist.is_main:
                splits = {role: [build_dataset(self.registry, s).load()
                                 for s in getattr(recipe.data, role)]
                          for role in ("source", "target", "test")}
            distributed.barrier(self.dist)
        self.splits = splits
        self.logger.print(f"data ready in {time.perf_counter() - started:.1f}s: "
                          + ", ".join(f"{role} {len(v)}" for role, v in splits.items()))
        self.train_loader = build_train_loader(splits["source"], splits["target"], recipe.loader,
                                               seed=recipe.seed, rank=self.dist.rank,
                                               world_size=self.dist.world_size,
                                               steps_per_epoch=cfg.steps_per_epoch)
        self.test_names = section_names(recipe.data.test)
        self.test_sets = (build_test_loaders(splits["test"], recipe.loader, names=self.test_names)
                          if self.dist.is_main else [])

        # method
        self.precision = Precision.create(self.device, cfg.precision, cfg.clip_grad_norm)
        if cfg.precision != "fp32" and self.device.type != "cuda":
            self.logger.print(f"note: train.precision = \"{cfg.precision}\" applies on CUDA "
                              "only; this CPU run uses fp32")
        self.clock = Clock(length=len(self.train_loader))
        self.context = MethodContext(
            recipe=recipe, registry=self.registry, num_classes=self.train_loader.num_classes,
            steps_per_epoch=len(self.train_loader), device=self.device,
            precision=self.precision, rank=self.dist.rank, world_size=self.dist.world_size,
            clock=self.clock, run_dir=self.run_dir, logger=self.logger)
        with torch.device(self.device) if self.device.type == "cuda" else contextlib.nullcontext():
            self.method = self.registry.get(Kind.METHOD, recipe.method.name).create(
                recipe.method.config, context=self.context)
        for module in self.method.modules().values():
            module.to(self.device)
            if cfg.channels_last:
                module.to(memory_format=torch.channels_last)
        self.optimization = self.method.configure_optimizers()
        if not isinstance(self.optimization, Optimization):
            raise TypeError(f"{recipe.method.name}.configure_optimizers() must return "
                            f"reidcore.engine.optim.Optimization, got "
                            f"{type(self.optimization).__name__}")
        evaluate = recipe.evaluate
        self.evaluator = self.registry.get(Kind.EVALUATOR, evaluate.name).create(evaluate.config)
        self.flip = bool(getattr(evaluate.config, "flip", False))

        if self.resume:
            self._load_latest()
        self.info = RunInfo(run_dir=str(self.run_dir), recipe=recipe, resumed=self.resume)
        if self.dist.is_main:
            self._write_run_files()

    def _write_run_files(self) -> None:
        from reidcore.recipe import to_dict, write_resolved

        write_resolved(self.recipe, self.run_dir / "recipe.toml")
        fingerprints = {}
        for role in ("source", "target", "test"):
            for index, split in enumerate(self.splits[role]):
                name = getattr(self.recipe.data, role)[index].name
                fingerprints[f"{role}[{index}] {name}"] = dataset_fingerprint([split])
        extra = {"device": str(self.device), "world_size": self.dist.world_size,
                 "num_classes": self.train_loader.num_classes,
                 "steps_per_epoch": len(self.train_loader), "resumed": self.resume}
        write_json(self.run_dir / "manifest.json",
                   manifest(to_dict(self.recipe), self.plugins, fingerprints, extra))

    # -- checkpoints ---------------------------------------------------------------------

    def _payload(self, epoch: int) -> dict[str, Any]:
        return {
            "format": ckpt.FORMAT, "epoch": epoch, "step": self.step,
            "modules": {n: m.state_dict() for n, m in self.method.modules().items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimization.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.optimization.schedulers.items()},
            "precision": self.precision.state_dict(), "rng": ckpt.rng_state(),
            "best": dict(self.best), "metrics": dict(self.last_metrics),
        }

    def save_checkpoint(self, epoch: int, improved: bool) -> None:
        if not self.dist.is_main:
            return
        payload = self._payload(epoch)
        ckpt.save(self.checkpoint_dir / f"epoch-{epoch:04d}.pt", payload)
        ckpt.prune(self.checkpoint_dir, self.train_cfg.keep_last)
        if improved:
            ckpt.save(self.checkpoint_dir / "best.pt", payload)

    def _load_latest(self) -> None:
        path = ckpt.latest(self.checkpoint_dir)
        if path is None:
            self.logger.print(f"--resume: no checkpoint in {self.checkpoint_dir} yet; "
                              "starting from the beginning")
            self.resume = False
            return
        data = ckpt.read(path)
        ckpt.load_modules(self.method.modules(), data["modules"], str(path))
        for kind, owners in (("optimizers", self.optimization.optimizers),
                             ("schedulers", self.optimization.schedulers)):
            saved = data.get(kind, {})
            if set(saved) != set(owners):
                raise ReidError(f"checkpoint {path} has {kind} {sorted(saved)} but the method "
                                f"has {sorted(owners)}")
            for name, owner in owners.items():
                owner.load_state_dict(saved[name])
        self.precision.load_state_dict(data.get("precision", {}))
        ckpt.set_rng_state(data["rng"])
        self.start_epoch = int(data["epoch"])
        self.step = int(data["step"])
        self.best = dict(data.get("best", self.best))
        self.last_metrics = dict(data.get("metrics", {}))
        self.logger.print(f"resumed from {path} (epoch {self.start_epoch}, step {self.step})")

    # -- loop ----------------------------------------------------------------------------

    def _lrs(self) -> dict[str, float]:
        return {f"lr/{name}": float(opt.param_groups[0]["lr"])
                for name, opt in self.optimization.optimizers.items()}

    def fit(self) -> dict[str, Any]:
        cfg = self.train_cfg
        modules = self.method.modules()
        schedulers = list(self.optimization.schedulers.values())
        progress = Progress(cfg.epochs, self.start_epoch)
        started = time.perf_counter()
        self.logger.print(f"training {self.recipe.method.name} on {self.device} for "
                          f"{cfg.epochs} epochs x {len(self.train_loader)} steps "
                          f"({self.train_loader.num_classes} identities)")
        for epoch in range(self.start_epoch, cfg.epochs):
            self.train_loader.set_epoch(epoch)
            steps = len(self.train_loader)
            self.clock.start_epoch(epoch, steps)
            for scheduler in schedulers:
                if hasattr(scheduler, "sync"):
                    scheduler.sync()
            if cfg.freeze_epochs:
                apply_freeze(self.optimization, cfg.freeze, epoch < cfg.freeze_epochs)
            set_train_mode(modules, True)
            sums: dict[str, float] = {}
            count = 0
            epoch_start = time.perf_counter()
            for batch in self.train_loader:
                metrics = self.method.training_step(batch, self.step)
                self.precision.update()
                self.clock.advance()
                for scheduler in schedulers:
                    scheduler.step()
                self.step += 1
                count += 1
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                self.hook.reid_train_step_end(run=self.info, step=self.step, metrics=metrics)
                if self.step % cfg.log_every == 0:
                    self.logger.scalars("train", self.step, epoch + count / steps,
                                        {**metrics, **self._lrs()}, tb_prefix="train/")
            means = {k: v / max(count, 1) for k, v in sums.items()}
            means = distributed.all_reduce_mean(self.dist, means)
            seconds = time.perf_counter() - epoch_start
            shown = "  ".join(f"{k} {v:.4f}" for k, v in means.items()
                              if k in ("loss", "accuracy") or k.startswith("loss/"))
            eta = progress.eta(epoch + 1)
            self.logger.print(
                f"epoch {epoch + 1}/{cfg.epochs}  {shown}  lr {self._lrs_text()}  "
                f"{count / seconds if seconds else 0:.1f} it/s  "
                f"elapsed {format_duration(time.perf_counter() - started)}  "
                f"eta {format_duration(eta) if math.isfinite(eta) else '?'}")
            self.logger.scalars("epoch", self.step, epoch + 1, means, tb_prefix="epoch/")
            improved = False
            last = epoch + 1 == cfg.epochs
            if (epoch + 1) % cfg.eval_every == 0 or last:
                improved = self.evaluate(epoch + 1, pictures=last)
            if (epoch + 1) % cfg.checkpoint_every == 0 or last:
                self.save_checkpoint(epoch + 1, improved)
            distributed.barrier(self.dist)
        if self.start_epoch >= cfg.epochs and not self.last_metrics and self.dist.is_main:
            self.evaluate(cfg.epochs, pictures=True)
        return self.finish(time.perf_counter() - started)

    def _lrs_text(self) -> str:
        return " ".join(f"{v:.2e}" for v in self._lrs().values())

    def evaluate(self, epoch: int, pictures: bool = False) -> bool:
        """Evaluate on every test set (rank 0); return whether the best metric improved."""
        if not self.dist.is_main or not self.test_sets:
            return False
        started = time.perf_counter()
        metrics, features = evaluate_test_sets(self.method, self.evaluator, self.test_sets,
                                               self.device, self.flip, self.precision,
                                               self.train_cfg.channels_last)
        self.last_metrics = metrics
        self.logger.scalars("eval", self.step, epoch, metrics, tb_prefix="eval/")
        self.hook.reid_evaluate_end(run=self.info, step=self.step, metrics=metrics)
        first = self.test_names[0]
        shown = "  ".join(f"{k.split('/', 1)[1]} {100 * v:.2f}" for k, v in metrics.items()
                          if k.startswith(f"{first}/") and k.split("/", 1)[1] in
                          ("mAP", "mINP", "rank1"))
        self.logger.print(f"evaluation at epoch {epoch} ({time.perf_counter() - started:.1f}s):"
                          f" {first}: {shown}")
        if pictures and self.train_cfg.ranked_pictures and hasattr(self.evaluator,
                                                                    "ranked_results"):
            for name, (query, gallery) in features.items():
                try:
                    _, image = self.evaluator.ranked_results(
                        query, gallery, self.run_dir / f"ranked_{name}.png",
                        num_queries=self.train_cfg.ranked_pictures, seed=self.recipe.seed)
                    self.logger.image(f"ranked/{name}", image, self.step)
                except Exception as exc:  # a picture must never cost the run
                    self.logger.print(f"warning: no ranked-results picture for {name}: {exc}")
        if hasattr(self.method, "log_images"):  # e.g. a generator's outputs, H x W x 3 uint8
            for tag, image in dict(self.method.log_images()).items():
                self.logger.image(f"images/{tag}", image, self.step)
        value = metrics.get(f"{first}/{self.train_cfg.best_metric}")
        if value is None:
            return False
        if self.best["value"] is None or value > self.best["value"]:
            self.best = {"metric": self.train_cfg.best_metric, "value": value, "epoch": epoch}
            return True
        return False

    def finish(self, seconds: float) -> dict[str, Any]:
        per_set = {name: {k.split("/", 1)[1]: v for k, v in self.last_metrics.items()
                          if k.startswith(f"{name}/")} for name in self.test_names}
        summary = {"status": "completed", "run_dir": str(self.run_dir),
                   "epochs": self.train_cfg.epochs, "steps": self.step,
                   "train_seconds": round(seconds, 2), "metrics": per_set,
                   "best": self.best}
        if self.dist.is_main:
            write_json(self.run_dir / "summary.json", summary)
            if self.test_names:
                self.logger.print(summary_table(self.last_metrics, self.test_names))
            self.logger.print(f"run directory: {self.run_dir}")
        return summary

    def close(self) -> None:
        logger = getattr(self, "logger", None)
        if logger is not None:
            logger.close()


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

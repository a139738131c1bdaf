"""The training loop of one process: data, method, checkpoints, logging, evaluation.

The engine owns the loop (device, precision, DDP, checkpoints, logging, evaluation
schedule, hooks) and the optimizers it builds from the method's groups; the method owns
its networks and its step. One epoch::

    clock.start_epoch(epoch, len(loader))
    for batch in loader:
        metrics = method.training_step(batch, step, optim)  # optim.update(...) per update
        precision.update(); clock.advance(); every scheduler.step()

Evaluation runs every ``train.eval_every`` epochs and after the last one, on every test
set (rank 0 only), with flip test-time augmentation when the evaluator's config says
``flip = true``.

Step metrics (0-d tensors or floats) are summed on the device and read every
``train.log_every`` steps and at the epoch's end (:mod:`reidcore.engine.step_metrics`): no
host sync per step unless an observer plugin implements ``reid_train_step_end``.

What a non-finite loss does is :mod:`reidcore.engine.nonfinite`'s (``train.nonfinite``).
The files are the run directory's (:class:`~reidcore.engine.rundir.RunDirectory`): on
``--resume`` the newest checkpoint that verifies is restored
(:func:`~reidcore.engine.checkpoint.restore_training`), a damaged one set aside.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reidcore.engine import checkpoint as ckpt
from reidcore.engine import distributed, tf32
from reidcore.engine.compile import CompileResult, compile_networks
from reidcore.engine.context import MethodContext, Precision
from reidcore.engine.device_loader import DeviceLoader
from reidcore.engine.distributed import DistInfo
from reidcore.engine.evaluate import (
    describe_evaluation,
    evaluate_test_sets,
    gallery_sharding,
    keep_rng_states,
    keep_torch_threads,
    set_train_mode,
)
from reidcore.engine.logging import (
    Progress,
    RunLogger,
    dataset_fingerprint,
    format_duration,
    manifest,
    summary_table,
    write_json,
)
from reidcore.engine.names import check_names
from reidcore.engine.nonfinite import NonFinitePolicy
from reidcore.engine.optim import Clock, Optimization
from reidcore.engine.rundir import RunDirectory
from reidcore.engine.step import StepOptimizers
from reidcore.engine.step_metrics import StepMetrics, to_floats
from reidcore.errors import ReidError
from reidcore.progress import progress
from reidcore.records import RunInfo
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


def section_names(sections: Sequence[Any]) -> list[str]:
    """Names for test sets: the component name, with ``-<index>`` when it repeats."""
    names = [s.name for s in sections]
    return [n if names.count(n) == 1 else f"{n}-{i}" for i, n in enumerate(names)]


def build_dataset(registry: Any, section: Any) -> Any:
    return registry.get(Kind.DATASET, section.name).create(section.config)


def apply_freeze(optimization: Optimization, groups: Sequence[str], frozen: bool) -> None:
    """(Un)freeze the parameters of the named optimizer groups."""
    for optimizer in optimization.optimizers.values():
        for group in optimizer.param_groups:
            if group.get("name") in groups:
                for param in group["params"]:
                    param.requires_grad_(not frozen)


# --- the trainer --------------------------------------------------------------------------


class Trainer:
    """One process's part of a run (see the module docstring)."""

    def __init__(self, recipe: Any, plugins: Any, run_dir: Path, resume: bool,
                 dist_info: DistInfo, quiet: bool = False,
                 recipe_changes: list[dict[str, Any]] | None = None):
        self.recipe = recipe
        self.plugins = plugins
        self.registry = plugins.registry
        self.hook = plugins.hook
        self.run_dir = run_dir
        self.files = RunDirectory(run_dir)
        self.resume = resume
        self.dist = dist_info
        self.quiet = quiet
        self.train_cfg = recipe.train
        self.device = resolve_device(self.train_cfg.device, dist_info.local_rank)
        self.step = 0
        self.start_epoch = 0
        self.best: dict[str, Any] = {"metric": self.train_cfg.best_metric, "value": None,
                                     "epoch": None}
        self.last_metrics: dict[str, float] = {}
        self.mechanism: dict[str, Any] = {}
        self.recipe_changes = list(recipe_changes or [])

    # -- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        from reidcore.data.loaders import build_test_loaders, build_train_loader

        recipe, cfg = self.recipe, self.train_cfg
        distributed.init_process_group(self.dist, self.device)
        seed_everything(recipe.seed, cfg.deterministic)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logger = RunLogger(self.run_dir, enabled=self.dist.is_main, quiet=self.quiet,
                                tracker=self._tracker())

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
        self.train_loader: Any = build_train_loader(
            splits["source"], splits["target"], recipe.loader, seed=recipe.seed,
            rank=self.dist.rank, world_size=self.dist.world_size,
            steps_per_epoch=cfg.steps_per_epoch)
        self.test_names = section_names(recipe.data.test)
        # every rank embeds its shard of the test sets; rank 0 gathers and scores them
        self.test_sets = build_test_loaders(splits["test"], recipe.loader, names=self.test_names,
                                            rank=self.dist.rank,
                                            world_size=self.dist.world_size)

        # method
        self.tf32 = tf32.apply(cfg.tf32, self.device)
        self.precision = Precision.create(self.device, cfg.precision, cfg.clip_grad_norm,
                                          skip_nonfinite=cfg.nonfinite == "skip")
        if cfg.precision != "fp32" and self.device.type != "cuda":
            self.logger.print(f"note: train.precision = \"{cfg.precision}\" applies on CUDA "
                              "only; this CPU run uses fp32")
        self.clock = Clock(length=len(self.train_loader))
        self.fingerprints = self._dataset_fingerprints()
        self.context = MethodContext(
            recipe=recipe, registry=self.registry, num_classes=self.train_loader.num_classes,
            steps_per_epoch=len(self.train_loader), device=self.device,
            precision=self.precision, rank=self.dist.rank, world_size=self.dist.world_size,
            clock=self.clock, run_dir=self.run_dir, logger=self.logger,
            source_datasets=self.fingerprints,
            legacy_source_datasets=self._dataset_fingerprints(("source",), relative=False))
        with torch.device(self.device) if self.device.type == "cuda" else contextlib.nullcontext():
            self.method = self.registry.get(Kind.METHOD, recipe.method.name).create(
                recipe.method.config, context=self.context)
        for module in self.method.modules().values():
            module.to(self.device)
            if cfg.channels_last:
                module.to(memory_format=torch.channels_last)
        self.compiled = (compile_networks(
            self.method.modules(), self.device, names=cfg.compile_modules,
            mode=None if cfg.compile_mode == "default" else cfg.compile_mode,
            log=self.logger.print) if cfg.compile else CompileResult())
        # on CUDA the next batch is copied (pinned, non-blocking) while a step runs
        self.train_loader = DeviceLoader(self.train_loader, self.device,
                                         channels_last=cfg.channels_last)
        self.optimization = self.method.configure_optimizers()
        if not isinstance(self.optimization, Optimization):
            raise TypeError(f"{recipe.method.name}.configure_optimizers() must return "
                            f"reidcore.engine.optim.Optimization, got "
                            f"{type(self.optimization).__name__}")
        evaluate = recipe.evaluate
        self.evaluator = self.registry.get(Kind.EVALUATOR, evaluate.name).create(evaluate.config)
        self.flip = bool(getattr(evaluate.config, "flip", False))
        why_gathered = gallery_sharding(self.evaluator, self.dist)
        if self.dist.enabled:
            self.logger.print("evaluation: each rank ranks its own block of the gallery"
                              if why_gathered is None else
                              f"evaluation: the gallery is gathered on rank 0 ({why_gathered})")
        check_names(recipe, self.optimization, self.evaluator, recipe.name or "being run")
        self.optim = StepOptimizers(self.optimization, self.precision,
                                    sync=self.context.sync_gradients)
        self.nonfinite = NonFinitePolicy(
            cfg.nonfinite, (b for m in self.method.modules().values() for b in m.buffers()),
            distributed=self.dist.enabled, log=self.logger.print)

        if self.resume:
            self._resume()
        self.info = RunInfo(run_dir=str(self.run_dir), recipe=recipe, resumed=self.resume)
        if self.dist.is_main:
            self._write_run_files()

    def _dataset_fingerprints(self, roles: Sequence[str] = ("source", "target", "test"),
                              relative: bool = True) -> dict[str, str]:
        """``"<role>[i] <name>"`` -> fingerprint of every dataset (manifest.json's; with
        ``relative=False`` the absolute-path form older manifests recorded)."""
        fingerprints = {}
        for role in roles:
            for index, split in enumerate(self.splits[role]):
                name = getattr(self.recipe.data, role)[index].name
                fingerprints[f"{role}[{index}] {name}"] = dataset_fingerprint(
                    [split], relative=relative)
        return fingerprints

    def _write_run_files(self) -> None:
        from reidcore.recipe import to_dict, write_resolved

        write_resolved(self.recipe, self.files.recipe_file)
        fingerprints = self.fingerprints
        extra = {"device": str(self.device), "world_size": self.dist.world_size,
                 "num_classes": self.train_loader.num_classes,
                 "steps_per_epoch": len(self.train_loader), "resumed": self.resume,
                 # float results depend on it: intra-op kernels split and sum by thread
                 "torch_threads": torch.get_num_threads(),
                 "tf32": self.tf32.record(), "compile": self.compiled.record(),
                 "recipe_changes": self._recipe_change_history()}
        write_json(self.files.manifest_file,
                   manifest(to_dict(self.recipe), self.plugins, fingerprints, extra))

    def _recipe_change_history(self) -> list[dict[str, Any]]:
        """The manifest's earlier recipe changes, and this resume's (``--resume
        --allow-recipe-change``): the directory keeps saying what its checkpoints are."""
        history = self.files.recipe_changes() if self.resume else []
        if self.recipe_changes:
            history.append({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "resumed_at_epoch": self.start_epoch, "resumed_at_step": self.step,
                            "changes": self.recipe_changes})
        return history

    # -- checkpoints ---------------------------------------------------------------------

    def save_checkpoint(self, epoch: int, improved: bool) -> None:
        """The checkpoint of ``epoch`` (and ``best.pt`` when ``improved``), by rank 0."""
        if not self.dist.is_main:
            return
        payload = ckpt.training_payload(
            epoch=epoch, step=self.step, modules=self.method.modules(),
            optimization=self.optimization, precision=self.precision, best=self.best,
            metrics=self.last_metrics, nonfinite_steps=self.nonfinite.skipped_total)
        self.nonfinite.last_checkpoint = self.files.save_checkpoint(
            epoch, payload, best=improved, keep_last=self.train_cfg.keep_last,
            previous=self.nonfinite.last_checkpoint)

    def _resume(self) -> None:
        newest = self.files.latest_good_checkpoint(set_aside=self.dist.is_main)
        if newest is None:
            self.logger.print(f"--resume: no checkpoint in {self.files.checkpoint_dir} yet; "
                              "starting from the beginning")
            self.resume = False
            return
        path, data = newest
        point = ckpt.restore_training(data, path, modules=self.method.modules(),
                                      optimization=self.optimization,
                                      precision=self.precision, best=self.best)
        self.start_epoch, self.step = point.epoch, point.step
        self.best, self.last_metrics = point.best, point.metrics
        self.nonfinite.skipped_total = point.nonfinite_steps
        self.nonfinite.last_checkpoint = path
        self.logger.print(f"resumed from {path} (epoch {self.start_epoch}, step {self.step})")

    # -- loop ----------------------------------------------------------------------------

    def _lrs(self) -> dict[str, float]:
        return {f"lr/{name}": float(opt.param_groups[0]["lr"])
                for name, opt in self.optimization.optimizers.items()}

    def fit(self) -> dict[str, Any]:
        cfg = self.train_cfg
        modules = self.method.modules()
        schedulers = list(self.optimization.schedulers.values())
        nonfinite = self.nonfinite
        clock = Progress(cfg.epochs, self.start_epoch)
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
            sums = StepMetrics()
            count = 0
            nonfinite.start_epoch()
            epoch_start = time.perf_counter()
            observed = bool(self.hook.reid_train_step_end.get_hookimpls())
            batches: Any = self.train_loader
            if self.dist.is_main and not self.quiet:
                batches = progress(batches, total=steps, unit="step",
                                   desc=f"epoch {epoch + 1}/{cfg.epochs}")
            for batch in batches:
                nonfinite.before_step()
                metrics = self.method.training_step(batch, self.step, self.optim)
                self.precision.update()
                self.clock.advance()
                for scheduler in schedulers:
                    scheduler.step()
                self.step += 1
                count += 1
                logging = self.step % cfg.log_every == 0
                nonfinite.after_step(metrics, sums, step=self.step, epoch=epoch, index=count,
                                     steps=steps, read=logging or count == steps)
                if observed:  # an observer reads floats: one sync per step, only then
                    self.hook.reid_train_step_end(run=self.info, step=self.step,
                                                  metrics=to_floats(metrics))
                if logging:
                    self.logger.scalars("train", self.step, epoch + count / steps,
                                        {**to_floats(metrics), **self._lrs()},
                                        tb_prefix="train/")
            means = nonfinite.epoch_means(
                sums, lambda values: distributed.all_reduce_mean(self.dist, values))
            skipped = nonfinite.skipped
            seconds = time.perf_counter() - epoch_start
            shown = "  ".join(f"{k} {v:.4f}" for k, v in means.items()
                              if k in ("loss", "accuracy") or k.startswith("loss/"))
            eta = clock.eta(epoch + 1)
            self.logger.print(
                f"epoch {epoch + 1}/{cfg.epochs}  {shown}  lr {self._lrs_text()}  "
                f"{count / seconds if seconds else 0:.1f} it/s  "
                f"elapsed {format_duration(time.perf_counter() - started)}  "
                f"eta {format_duration(eta) if math.isfinite(eta) else '?'}"
                + (f"  skipped {skipped} non-finite steps" if skipped else ""))
            self.logger.scalars("epoch", self.step, epoch + 1, means, tb_prefix="epoch/")
            improved = False
            last = epoch + 1 == cfg.epochs
            if (epoch + 1) % cfg.eval_every == 0 or last:
                improved = self.evaluate(epoch + 1, pictures=last)
            if (epoch + 1) % cfg.checkpoint_every == 0 or last:
                self.save_checkpoint(epoch + 1, improved)
            distributed.barrier(self.dist)
        done_unevaluated = self.start_epoch >= cfg.epochs and not self.last_metrics
        if distributed.broadcast_object(self.dist, done_unevaluated):  # all ranks evaluate
            self.evaluate(cfg.epochs, pictures=True)
        return self.finish(time.perf_counter() - started)

    def _lrs_text(self) -> str:
        return " ".join(f"{v:.2e}" for v in self._lrs().values())

    def evaluate(self, epoch: int, pictures: bool = False) -> bool:
        """Evaluate on every test set (every rank embeds its shard, rank 0 scores); return
        whether the best metric improved (on rank 0). The RNGs and the thread count are
        left as they were, so evaluating more often never changes the training."""
        with keep_rng_states(), keep_torch_threads():
            return self._evaluate(epoch, pictures)

    def _evaluate(self, epoch: int, pictures: bool) -> bool:
        if not self.test_sets:
            return False
        started = time.perf_counter()
        distributed.broadcast_buffers(self.dist, self.method.modules())
        metrics, features = evaluate_test_sets(
            self.method, self.evaluator, self.test_sets, self.device, self.flip,
            self.precision, self.train_cfg.channels_last,
            dist=self.dist, per_query=self.files.per_query_file,
            keep_gallery=pictures and self.train_cfg.ranked_pictures > 0)
        if not self.dist.is_main:
            return False
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
                        query, gallery, self.files.ranked_picture(name),
                        num_queries=self.train_cfg.ranked_pictures, seed=self.recipe.seed)
                    self.logger.image(f"ranked/{name}", image, self.step)
                except Exception as exc:  # a picture must never cost the run
                    self.logger.print(f"warning: no ranked-results picture for {name}: {exc}")
        if pictures:
            self._measure_mechanism(epoch, features)
        value = metrics.get(f"{first}/{self.train_cfg.best_metric}")
        if value is None:
            return False
        if self.best["value"] is None or value > self.best["value"]:
            self.best = {"metric": self.train_cfg.best_metric, "value": value, "epoch": epoch}
            return True
        return False

    def _measure_mechanism(self, epoch: int, features: dict[str, Any]) -> None:
        """The proving ground after the final evaluation (:mod:`reidcore.engine.mechanism`)."""
        from reidcore.engine.mechanism import mechanism_report, scalars

        samples = self.train_cfg.mechanism_samples
        if samples <= 0:
            return
        if self.dist.world_size > 1:  # the networks are DDP-wrapped: rank 0 cannot run alone
            self.logger.print("note: the mechanism metrics are measured in single-process "
                              "runs only (train.mechanism_samples); not in this DDP run")
            return
        modules = self.method.modules()
        set_train_mode(modules, False)
        try:
            report, grids = mechanism_report(
                self.method, self.recipe, self.splits, self.test_sets,
                {name: gallery.features.float().cpu().numpy()
                 for name, (_, gallery) in features.items()},
                self.device, self.flip, samples)
        finally:
            set_train_mode(modules, True)
        if not report:
            return
        from reidcore.engine.images import save_png

        self.mechanism = report
        self.logger.scalars("mechanism", self.step, epoch, scalars(report),
                            tb_prefix="mechanism/")
        for capability, picture in grids.items():
            save_png(picture, self.files.mechanism_picture(capability))
            self.logger.image(f"mechanism/{capability}", picture, self.step)
        for capability, part in report.items():
            fidelity = part["fidelity"]
            shown = "  ".join(f"{name} L1 {m['l1']['mean']:.4f} SSIM {m['ssim']['mean']:.3f}"
                              for name, m in fidelity.items())
            self.logger.print(f"mechanism {capability}: {shown}")

    def _tracker(self) -> Any:
        """The MLflow tracker when ``train.mlflow`` asks for one (rank 0 only)."""
        if not (self.train_cfg.mlflow and self.dist.is_main):
            return None
        from reidcore.recipe import to_dict
        from reidcore.tracking import MlflowTracker

        return MlflowTracker(self.train_cfg.mlflow, self.run_dir,
                             self.recipe.name or "reid", to_dict(self.recipe))

    def finish(self, seconds: float) -> dict[str, Any]:
        per_set = {name: {k.split("/", 1)[1]: v for k, v in self.last_metrics.items()
                          if k.startswith(f"{name}/")} for name in self.test_names}
        summary = {"status": "completed", "run_dir": str(self.run_dir),
                   "epochs": self.train_cfg.epochs, "steps": self.step,
                   "train_seconds": round(seconds, 2), "metrics": per_set,
                   "best": self.best, "nonfinite_steps": self.nonfinite.skipped_total,
                   "evaluation": describe_evaluation(self.evaluator, self.test_sets)}
        if self.mechanism:
            summary["mechanism"] = self.mechanism
        if self.dist.is_main:
            write_json(self.files.summary_file, summary)
            files = self.files
            self.logger.finish([files.recipe_file, files.manifest_file, files.summary_file,
                                files.metrics_file, *sorted(self.run_dir.glob("*.png"))])
            if self.test_names:
                self.logger.print(summary_table(self.last_metrics, self.test_names))
            self.logger.print(f"run directory: {self.run_dir}")
        return summary

    def close(self) -> None:
        logger = getattr(self, "logger", None)
        if logger is not None:
            logger.close()

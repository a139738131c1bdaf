"""The training loop of one process: data, method, checkpoints, logging, evaluation.

The engine owns the loop (device, precision, DDP, checkpoints, logging, evaluation
schedule, hooks); the method owns its networks, optimizers and step. One epoch::

    clock.start_epoch(epoch, len(loader))
    for batch in loader:
        metrics = method.training_step(batch, step)   # backward + optimizer steps inside
        precision.update(); clock.advance(); every scheduler.step()

Evaluation runs every ``train.eval_every`` epochs and after the last one, on every test
set (rank 0 only), with flip test-time augmentation when the evaluator's config says
``flip = true``.

Step metrics (0-d tensors or floats) are summed on the device and read every
``train.log_every`` steps and at the epoch's end (:mod:`reidcore.engine.step_metrics`): no
host sync per step unless an observer plugin implements ``reid_train_step_end``.

A non-finite loss (``loss`` or a ``loss/<term>`` of a step's metrics) stops the run
(``train.nonfinite = "stop"``), at the next read, naming the first bad step, before any
checkpoint is written; or skips the step (``"skip"``, which reads every step). Under DDP
the ranks agree on a stop at the epoch's end, in the all-reduce of the epoch means (before
anything is saved). A damaged last checkpoint is
set aside on ``--resume`` (renamed ``*.damaged``) and the previous good one is used.
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
from reidcore.engine.optim import Clock, Optimization
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


class NonFiniteLossError(ReidError):
    """Training produced a non-finite loss (``train.nonfinite = "stop"``)."""


def nonfinite_terms(metrics: dict[str, float]) -> list[str]:
    """The loss terms (``loss``, ``loss/<term>``) of a step's metrics that are not finite."""
    return [key for key, value in metrics.items()
            if key.startswith("loss") and not math.isfinite(value)]


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
        self.recipe_changes = list(recipe_changes or [])
        self.last_checkpoint: Path | None = None
        self.nonfinite_steps = 0

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
        check_names(recipe, self.optimization, self.evaluator, recipe.name or "being run")
        self.optim = StepOptimizers(self.optimization, self.precision,
                                    sync=self.context.sync_gradients)

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
                 "steps_per_epoch": len(self.train_loader), "resumed": self.resume,
                 # float results depend on it: intra-op kernels split and sum by thread
                 "torch_threads": torch.get_num_threads(),
                 "tf32": self.tf32.record(), "compile": self.compiled.record(),
                 "recipe_changes": self._recipe_change_history()}
        write_json(self.run_dir / "manifest.json",
                   manifest(to_dict(self.recipe), self.plugins, fingerprints, extra))

    def _recipe_change_history(self) -> list[dict[str, Any]]:
        """The manifest's earlier recipe changes, and this resume's (``--resume
        --allow-recipe-change``): the directory keeps saying what its checkpoints are."""
        import json

        history: list[dict[str, Any]] = []
        if self.resume:
            try:
                old = json.loads((self.run_dir / "manifest.json").read_text(encoding="utf-8"))
                history = list(old.get("recipe_changes") or [])
            except (OSError, ValueError, AttributeError):
                history = []
        if self.recipe_changes:
            history.append({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "resumed_at_epoch": self.start_epoch, "resumed_at_step": self.step,
                            "changes": self.recipe_changes})
        return history

    # -- checkpoints ---------------------------------------------------------------------

    def _payload(self, epoch: int) -> dict[str, Any]:
        return {
            "format": ckpt.FORMAT, "epoch": epoch, "step": self.step,
            "modules": {n: m.state_dict() for n, m in self.method.modules().items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimization.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.optimization.schedulers.items()},
            "precision": self.precision.state_dict(), "rng": ckpt.rng_state(),
            "best": dict(self.best), "metrics": dict(self.last_metrics),
            "nonfinite_steps": self.nonfinite_steps,
        }

    def save_checkpoint(self, epoch: int, improved: bool) -> None:
        if not self.dist.is_main:
            return
        payload = self._payload(epoch)
        path = self.checkpoint_dir / f"epoch-{epoch:04d}.pt"
        try:
            ckpt.save(path, payload)
            self.last_checkpoint = path
            ckpt.prune(self.checkpoint_dir, self.train_cfg.keep_last)
            if improved:
                ckpt.save(self.checkpoint_dir / "best.pt", payload)
        except ckpt.DiskFullError as exc:
            previous = (f"the last checkpoint, {self.last_checkpoint}, is intact"
                        if self.last_checkpoint is not None else "no checkpoint was saved yet")
            raise ckpt.DiskFullError(
                f"{exc}. {previous}: free some space and continue with `reid run "
                f"{self.run_dir / 'recipe.toml'} --out {self.run_dir} --resume`") from None

    def _read_newest_good(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest epoch checkpoint that reads and verifies; damaged ones on the way
        are reported by path and set aside (``*.damaged``, by rank 0)."""
        found = ckpt.epoch_checkpoints(self.checkpoint_dir)
        damaged: list[str] = []
        for _, path in reversed(found):
            try:
                data = ckpt.read(path)
            except ReidError as exc:
                damaged.append(str(path))
                if self.dist.is_main:
                    aside = path.with_name(path.name + ".damaged")
                    with contextlib.suppress(OSError):
                        path.rename(aside)
                    print(f"warning: {exc}; set aside as {aside}", flush=True)
                continue
            if damaged and self.dist.is_main:
                print(f"--resume: using the previous good checkpoint {path} instead of the "
                      f"damaged {', '.join(damaged)}", flush=True)
            return path, data
        if damaged:
            raise ReidError(f"--resume: no checkpoint in {self.checkpoint_dir} can be loaded "
                            f"(damaged: {', '.join(damaged)}); start a new run")
        return None

    def _load_latest(self) -> None:
        newest = self._read_newest_good()
        if newest is None:
            self.logger.print(f"--resume: no checkpoint in {self.checkpoint_dir} yet; "
                              "starting from the beginning")
            self.resume = False
            return
        path, data = newest
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
        self.nonfinite_steps = int(data.get("nonfinite_steps", 0))
        self.last_checkpoint = path
        self.logger.print(f"resumed from {path} (epoch {self.start_epoch}, step {self.step})")

    # -- loop ----------------------------------------------------------------------------

    def _lrs(self) -> dict[str, float]:
        return {f"lr/{name}": float(opt.param_groups[0]["lr"])
                for name, opt in self.optimization.optimizers.items()}

    def fit(self) -> dict[str, Any]:
        cfg = self.train_cfg
        modules = self.method.modules()
        schedulers = list(self.optimization.schedulers.values())
        skip = cfg.nonfinite == "skip"
        # a skipped step must not leave its BatchNorm statistics behind either
        buffers = [b for module in modules.values() for b in module.buffers()] if skip else []
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
            count = skipped = 0
            first_bad: str | None = None  # under DDP: raised at the epoch's end
            epoch_start = time.perf_counter()
            observed = bool(self.hook.reid_train_step_end.get_hookimpls())
            batches: Any = self.train_loader
            if self.dist.is_main and not self.quiet:
                batches = progress(batches, total=steps, unit="step",
                                   desc=f"epoch {epoch + 1}/{cfg.epochs}")
            for batch in batches:
                saved = [b.clone() for b in buffers] if skip else None
                metrics = self.method.training_step(batch, self.step, self.optim)
                self.precision.update()
                self.clock.advance()
                for scheduler in schedulers:
                    scheduler.step()
                self.step += 1
                count += 1
                if skip:  # skip mode syncs every step anyway (the gradient check)
                    values = to_floats(metrics)
                    if nonfinite_terms(values):
                        report = self._nonfinite_report(values, epoch, count, steps)
                        for buffer, before in zip(buffers, saved or [], strict=True):
                            buffer.copy_(before)
                        skipped += 1
                        self.nonfinite_steps += 1
                        if self.nonfinite_steps <= 10 or self.nonfinite_steps % 100 == 0:
                            self.logger.print(f"warning: skipped {report} (non-finite steps "
                                              f"skipped so far: {self.nonfinite_steps})")
                    else:
                        sums.add(values)
                else:
                    sums.add(metrics, step=self.step)
                logging = self.step % cfg.log_every == 0
                if not skip and (logging or count == steps):
                    first_bad = first_bad or self._check_nonfinite(sums, epoch, count, steps)
                if observed:  # an observer reads floats: one sync per step, only then
                    self.hook.reid_train_step_end(run=self.info, step=self.step,
                                                  metrics=to_floats(metrics))
                if logging:
                    self.logger.scalars("train", self.step, epoch + count / steps,
                                        {**to_floats(metrics), **self._lrs()},
                                        tb_prefix="train/")
            means = sums.means()
            if self.dist.enabled and not skip:
                means["nonfinite"] = 1.0 if first_bad else 0.0
            means = distributed.all_reduce_mean(self.dist, means)
            if means.pop("nonfinite", 0.0) > 0:
                raise NonFiniteLossError(self._nonfinite_message(
                    first_bad or "a non-finite loss in another process in this epoch"))
            if skip:
                means["nonfinite_steps"] = float(skipped)
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

    def _check_nonfinite(self, sums: StepMetrics, epoch: int, count: int,
                         steps: int) -> str | None:
        """The report of the first non-finite step since the last check (one sync), raised
        at once in one process; under DDP returned, and raised at the epoch's end."""
        found = sums.nonfinite()
        if found is None:
            return None
        step, values = found
        report = self._nonfinite_report(values, epoch, count - (self.step - step), steps, step)
        if self.dist.enabled:
            return report
        raise NonFiniteLossError(self._nonfinite_message(report))

    def _nonfinite_report(self, values: dict[str, float], epoch: int, index: int,
                          steps: int, step: int | None = None) -> str:
        terms = ", ".join(f"{key} {value:.6g}" for key, value in values.items()
                          if key.startswith("loss"))
        return (f"step {self.step if step is None else step} (epoch {epoch + 1}, batch "
                f"{index} of {steps}) with a non-finite loss: {terms}")

    def _nonfinite_message(self, report: str) -> str:
        last = (f"the last good checkpoint is {self.last_checkpoint}"
                if self.last_checkpoint is not None else "no checkpoint has been saved yet")
        return (f"training stopped at {report}; {last} (nothing was saved after it). "
                f"Lower train.lr, set train.clip_grad_norm, or set train.nonfinite = \"skip\" "
                f"to skip such steps")

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
            gather=lambda rows: distributed.gather_rows(self.dist, rows))
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
                        query, gallery, self.run_dir / f"ranked_{name}.png",
                        num_queries=self.train_cfg.ranked_pictures, seed=self.recipe.seed)
                    self.logger.image(f"ranked/{name}", image, self.step)
                except Exception as exc:  # a picture must never cost the run
                    self.logger.print(f"warning: no ranked-results picture for {name}: {exc}")
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
                   "best": self.best, "nonfinite_steps": self.nonfinite_steps,
                   "evaluation": describe_evaluation(self.evaluator, self.test_sets)}
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

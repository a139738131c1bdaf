"""Training throughput: the model alone (the limit) against the engine, per method and precision.

On a CUDA machine, for the baseline (ResNet-50, last stride 1, BNNeck, CE + triplet,
256x128, P16 x K4) and for every installed plugin's paper-size method (each method the
registry lists, built from its packaged paper recipe: the first one naming the method
that is not a synthetic recipe, Market-1501 preferred), it prints for fp32 / bf16 / fp16:

* ``alone``: the limit: the method's ``training_step`` on one batch already on the GPU,
  over and over (for the baseline also ``hand``: a hand-written step of the same network
  and losses, with no per-step host sync);
* ``engine``: the engine's loop as it is (``Trainer.fit``: loader workers, hooks, logging);
* ``engine+``: the engine with the opt-in pieces on (the decoded-image cache,
  ``--compile``) and cuDNN autotuning (``train.deterministic = false``); TF32 and the
  prefetching device loader are on in both rows (the engine's defaults on CUDA);

with images/s, the ratio to the limit, and peak GPU memory. Data: the synthetic data set
generated at the recipe's image size (no data set, no download; ``pretrained`` off).

On a CPU machine it runs the quickstart's tiny model (ResNet-10-T at 64x32, 8 x 4) and
says what it measured there: per step, the loader alone, the pure hand-written step, the
method's step, the method with the loader and no engine, and the engine (with and without
the image cache): the engine's host overhead per step against the hand-written loop.

    python benchmarks/train_gpu.py                       # everything this machine can do
    python benchmarks/train_gpu.py --methods baseline flipreid --precisions bf16 --compile
    python benchmarks/train_gpu.py --steps 20 --warmup 5 --repeats 2   # CPU: noisy, repeat
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import attrs  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from reidcore.engine import tf32  # noqa: E402
from reidcore.engine.device_loader import move_batch  # noqa: E402
from reidcore.engine.distributed import DistInfo  # noqa: E402
from reidcore.engine.trainer import Trainer  # noqa: E402
from reidcore.losses.losses import batch_hard_triplet  # noqa: E402
from reidcore.plugins import get_plugins  # noqa: E402
from reidcore.recipe import find_recipe, read_toml, resolve  # noqa: E402
from reidcore.registry import Kind  # noqa: E402

PAPER_BASELINE = {  # the strong baseline at its paper size
    "backbone": {"name": "timm", "model": "resnet50", "last_stride": 1, "pretrained": ""},
    "loader": {"height": 256, "width": 128, "identities": 16, "instances": 4},
}
METHOD_SETS = {  # per method: settings that make every step a full training step
    "flipreid": ["method.frozen_epochs=0"],
}


@attrs.define
class Case:
    label: str
    raw: dict[str, Any]
    sets: list[str]


@attrs.define
class Result:
    images_per_s: float
    ms_per_step: float
    peak_gb: float | None = None
    note: str = ""
    gap_ms: float | None = None
    """Median host time between two steps (batch fetch + loop work): device idle time."""


# --- recipes ------------------------------------------------------------------------------


def _synthetic(raw: dict[str, Any], cache_root: str) -> dict[str, Any]:
    """The recipe on synthetic data of its image size: no data set needed."""
    loader = raw.setdefault("loader", {})
    size = f"{loader.get('height', 256)}x{loader.get('width', 128)}"
    data = {"name": "synthetic", "size": size, "ids": 40, "test_ids": 4, "distractors": 0,
            "cameras": 4, "images_per_camera": 4, "root": cache_root}
    raw = dict(raw)
    target = None
    if raw.get("data", {}).get("target"):  # unlabelled target domain: the other style
        target = [dict(data, style="real")]
    raw["data"] = {"source": [dict(data)], "test": [dict(data)]}
    if target:
        raw["data"]["target"] = target
    raw.pop("requires", None)
    backbone = dict(raw.get("backbone") or {})
    if backbone:
        backbone["pretrained"] = ""
        raw["backbone"] = backbone
    return raw


def discover(plugins: Any, matrix: bool, wanted: list[str], cache_root: str) -> list[Case]:
    """The cases to measure: the baseline and each installed method's paper recipe
    (``matrix``), or the quickstart alone."""
    dirs = plugins.recipe_dirs()
    quick = read_toml(find_recipe("quickstart", dirs))
    if not matrix:  # the quickstart itself, on its own (cached) synthetic data
        return [Case("baseline: the quickstart (ResNet-10-T, 64x32, 8 x 4)", quick, [])]
    cases = [Case("baseline R50 256x128", _synthetic(
        {**quick, **{k: {**quick.get(k, {}), **v} for k, v in PAPER_BASELINE.items()}},
        cache_root), [])]
    recipes: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for _provider, folder in dirs:
        for path in sorted(folder.glob("*.toml")):
            raw = read_toml(path)
            name = raw.get("method", {}).get("name")
            if name:
                recipes.setdefault(name, []).append((path.stem, raw))
    for method in sorted(plugins.registry.names(Kind.METHOD)):
        if method == "baseline" or (wanted and method not in wanted):
            continue
        candidates = [(stem, raw) for stem, raw in recipes.get(method, [])
                      if "synthetic" not in stem]
        candidates.sort(key=lambda item: ("market" not in item[0], item[0]))
        if not candidates:
            print(f"  {method}: skipped (no packaged paper recipe names it)")
            continue
        stem, raw = candidates[0]
        raw = _synthetic(raw, cache_root)
        loader = raw["loader"]
        cases.append(Case(f"{method} ({stem}) {loader.get('height')}x{loader.get('width')}",
                          raw, list(METHOD_SETS.get(method, []))))
    if wanted and "baseline" not in wanted:
        cases = cases[1:]
    return cases


def make_recipe(plugins: Any, case: Case, precision: str, device: str, steps: int,
                workers: int | None, extra: list[str]) -> Any:
    if extra and any(e.startswith(("loader.height", "loader.width")) for e in extra):
        case = attrs.evolve(case, raw=_synthetic(_sized(case.raw, extra), case.raw["data"]
                                                 ["source"][0]["root"]))
    sets = [f"train.device=\"{device}\"", f"train.precision=\"{precision}\"",
            "train.epochs=1", f"train.steps_per_epoch={steps}", "train.log_every=20",
            "train.eval_every=1", *case.sets, *extra]
    if workers is not None:
        sets.append(f"loader.workers={workers}")
    return resolve(case.raw, f"<{case.label}>", plugins.registry, plugins.hook, overrides=sets)


def _sized(raw: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """``raw`` with the loader size of ``--set loader.height/width`` (the data follows)."""
    loader = dict(raw.get("loader", {}))
    for item in sets:
        key, _, value = item.partition("=")
        if key in ("loader.height", "loader.width"):
            loader[key.split(".")[1]] = int(value)
    return {**raw, "loader": loader}


# --- measurements -------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _timed(device: torch.device, batch_size: int, warmup: int, steps: int,
           run: Callable[[int], None]) -> Result:
    for step in range(warmup):
        run(step)
    _sync(device)
    _reset_peak(device)
    started = time.perf_counter()
    for step in range(warmup, warmup + steps):
        run(step)
    _sync(device)
    seconds = time.perf_counter() - started
    return Result(steps * batch_size / seconds, 1000 * seconds / steps, _peak(device))


def setup_trainer(plugins: Any, recipe: Any, out: Path) -> Trainer:
    trainer = Trainer(recipe, plugins, out, False, DistInfo(), quiet=True)
    trainer.setup()
    trainer.evaluate = lambda *args, **kwargs: False  # training only
    trainer.save_checkpoint = lambda *args, **kwargs: None
    return trainer


def first_batch(trainer: Trainer) -> Any:
    trainer.train_loader.set_epoch(0)
    for batch in trainer.train_loader:
        return move_batch(batch, trainer.device)
    raise RuntimeError("the loader gave no batch")


def method_alone(trainer: Trainer, batch: Any, warmup: int, steps: int) -> Result:
    """``training_step`` on one batch already on the device: no loader, no engine."""
    method, precision = trainer.method, trainer.precision
    size = len(batch["pids"])

    def run(step: int) -> None:
        method.training_step(batch, step, trainer.optim)
        precision.update()

    return _timed(trainer.device, size, warmup, steps, run)


def hand_alone(trainer: Trainer, batch: Any, warmup: int, steps: int) -> Result | None:
    """The baseline's step written by hand (CE with smoothing + batch-hard triplet, one
    optimizer, no metrics: no host sync), on the method's own network and optimizer."""
    network = getattr(trainer.method, "network", None)
    if trainer.recipe.method.name != "baseline" or network is None:
        return None
    optimizer = trainer.optimization.optimizers["main"]
    precision = trainer.precision
    images, pids = batch["images"], batch["pids"]
    if trainer.train_cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)

    def run(step: int) -> None:
        with precision.autocast():
            out = network(images)
        loss = (F.cross_entropy(out["logits"].float(), pids, label_smoothing=0.1)
                + batch_hard_triplet(out["features"], pids, margin=0.3))
        optimizer.zero_grad(set_to_none=True)
        precision.backward(loss)
        precision.step(optimizer)
        precision.update()

    return _timed(trainer.device, len(pids), warmup, steps, run)


def loader_alone(trainer: Trainer, warmup: int, steps: int) -> Result:
    loader = trainer.train_loader
    loader.set_epoch(1)
    iterator = iter(loader)
    size = trainer.recipe.loader.identities * trainer.recipe.loader.instances
    result = _timed(trainer.device, size, warmup, steps, lambda _step: next(iterator))
    with contextlib.suppress(Exception):
        iterator.close()  # type: ignore[attr-defined]
    return result


class StepClock:
    """Wraps ``method.training_step``: when each call starts and ends. The host time
    *between* two calls (fetching the batch, the loop's own work) is time the device
    waits, whatever the step costs: the loop's overhead, robust to a noisy machine."""

    def __init__(self, trainer: Trainer, warmup: int):
        self.trainer, self.warmup = trainer, warmup
        self.method = trainer.method
        self.step_fn = self.method.training_step
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.measured_from: float | None = None

    def __enter__(self) -> StepClock:
        self.method.training_step = self
        return self

    def __exit__(self, *exc: Any) -> None:
        del self.method.training_step

    def __call__(self, batch: Any, step: int, optim: Any) -> Any:
        self.starts.append(time.perf_counter())
        out = self.step_fn(batch, step, optim)
        if len(self.ends) + 1 == self.warmup:
            _sync(self.trainer.device)
            _reset_peak(self.trainer.device)
            self.measured_from = time.perf_counter()
        self.ends.append(time.perf_counter())
        return out

    def result(self, steps: int, note: str = "") -> Result:
        _sync(self.trainer.device)
        ended = time.perf_counter()
        if self.measured_from is None or len(self.ends) < self.warmup + steps:
            raise RuntimeError(f"{len(self.ends)} steps ran, {self.warmup + steps} expected")
        seconds = ended - self.measured_from
        gaps = sorted(self.starts[i + 1] - self.ends[i]
                      for i in range(self.warmup - 1, self.warmup + steps - 1))
        size = self.trainer.recipe.loader.identities * self.trainer.recipe.loader.instances
        return Result(steps * size / seconds, 1000 * seconds / steps,
                      _peak(self.trainer.device), note=note,
                      gap_ms=1000 * gaps[len(gaps) // 2])


def with_loader(trainer: Trainer, warmup: int, steps: int) -> Result:
    """``training_step`` over the loader's batches: the loop without the engine."""
    loader, method, precision = trainer.train_loader, trainer.method, trainer.precision
    loader.set_epoch(2)
    iterator = iter(loader)
    with StepClock(trainer, max(warmup, 1)) as clock:
        for step in range(max(warmup, 1) + steps):
            method.training_step(next(iterator), step, trainer.optim)
            precision.update()
    return clock.result(steps)


def engine(trainer: Trainer, warmup: int, steps: int) -> Result:
    """``Trainer.fit`` for one epoch of ``warmup + steps`` steps, timed from the end of the
    warm-up steps; the wait for the first batch (workers starting) is reported apart."""
    started = time.perf_counter()
    with StepClock(trainer, max(warmup, 1)) as clock:
        trainer.fit()
    return clock.result(steps, note=f"first batch after {clock.starts[0] - started:.2f}s")


def fixes(args: argparse.Namespace) -> list[str]:
    """The recipe keys of the opt-in pieces: the decoded-image cache and, with
    ``--compile``, torch.compile (TF32 and the prefetching device loader are the engine's
    defaults on CUDA)."""
    sets = []
    if args.cache_gb > 0:
        sets += ["loader.cache_images=true", f"loader.cache_gb={args.cache_gb}"]
    if args.compile:
        sets.append("train.compile=true")
    return sets


def describe_fixes(trainer: Trainer) -> str:
    cfg, loader = trainer.train_cfg, trainer.recipe.loader
    notes = [f"tf32 {'on' if trainer.tf32.enabled else 'off'}"]
    if loader.cache_images:
        notes.append(f"image cache <= {loader.cache_gb} GiB")
    if cfg.compile:
        notes.append(f"compiled {','.join(trainer.compiled.compiled) or 'nothing'}")
    return ", ".join(notes)


# --- main ---------------------------------------------------------------------------------


def _line(name: str, result: Result | None, limit: float | None = None, extra: str = "") -> str:
    if result is None:
        return f"    {name:9s} -"
    ratio = f"  {100 * result.images_per_s / limit:5.1f} % of limit" if limit else ""
    peak = f"  peak {result.peak_gb:.2f} GiB" if result.peak_gb is not None else ""
    if result.gap_ms is not None:
        peak += f"  gap {result.gap_ms:6.1f} ms"
    note = "  " + "; ".join(n for n in (result.note, extra) if n) if result.note or extra else ""
    return (f"    {name:9s} {result.images_per_s:8.1f} images/s  {result.ms_per_step:8.1f} "
            f"ms/step{ratio}{peak}{note}")


def run_matrix_case(plugins: Any, case: Case, precision: str, args: argparse.Namespace,
                    tmp: Path, device: str) -> None:
    baseline_limit = None
    for variant in ("as-is", "fixes"):
        extra = ["train.deterministic=false", *fixes(args)] if variant == "fixes" else []
        if args.channels_last:
            extra.append("train.channels_last=true")
        recipe = make_recipe(plugins, case, precision, device, args.warmup + args.steps,
                             args.workers, [*extra, *args.overrides])
        if variant == "as-is":
            loader = recipe.loader
            print(f"  {case.label}  {precision}  (run at {loader.height}x{loader.width}, "
                  f"{loader.identities} x {loader.instances}, {loader.workers} workers)",
                  flush=True)
        flags = tf32.tf32_flags()
        trainer = setup_trainer(plugins, recipe, tmp / f"{case.label}-{precision}-{variant}")
        try:
            if variant == "as-is":
                batch = first_batch(trainer)
                hand = hand_alone(trainer, batch, args.warmup, args.steps)
                alone = method_alone(trainer, batch, args.warmup, args.steps)
                baseline_limit = max(alone.images_per_s, hand.images_per_s if hand else 0)
                if hand is not None:
                    print(_line("hand", hand), flush=True)
                print(_line("alone", alone), flush=True)
                result = engine(trainer, args.warmup, args.steps)
                print(_line("engine", result, baseline_limit), flush=True)
            else:
                notes = describe_fixes(trainer)
                result = engine(trainer, args.warmup, args.steps)
                print(_line("engine+", result, baseline_limit, notes), flush=True)
            if precision == args.precisions[0] or device == "cpu":  # the loader: once
                name = "loader" if variant == "as-is" else "loader+"
                print(_line(name, loader_alone(trainer, args.warmup, args.steps),
                            baseline_limit), flush=True)
        finally:
            trainer.close()
            tf32.restore_flags(flags)
            del trainer
            if device == "cuda":
                torch.cuda.empty_cache()


def run_cpu(plugins: Any, case: Case, args: argparse.Namespace, tmp: Path) -> None:
    print(f"  {case.label}  fp32, {torch.get_num_threads()} torch threads, "
          f"loader.workers = {args.workers if args.workers is not None else 'recipe'}; "
          f"best of {args.repeats}", flush=True)
    best: dict[str, Result] = {}

    def keep(name: str, result: Result | None) -> None:
        if result is not None and (name not in best
                                   or result.ms_per_step < best[name].ms_per_step):
            best[name] = result

    cache = ["loader.cache_images=true", f"loader.cache_gb={max(args.cache_gb, 0.1)}"]
    for repeat in range(args.repeats):
        for variant in ("plain", "cache"):
            recipe = make_recipe(plugins, case, "fp32", "cpu", args.warmup + args.steps,
                                 args.workers, cache if variant == "cache" else [])
            trainer = setup_trainer(plugins, recipe, tmp / f"cpu-{repeat}-{variant}")
            try:
                if variant == "plain":
                    batch = first_batch(trainer)
                    keep("loader", loader_alone(trainer, args.warmup, args.steps))
                    keep("hand", hand_alone(trainer, batch, args.warmup, args.steps))
                    keep("alone", method_alone(trainer, batch, args.warmup, args.steps))
                    keep("+loader", with_loader(trainer, args.warmup, args.steps))
                    keep("engine", engine(trainer, args.warmup, args.steps))
                else:
                    note = describe_fixes(trainer)
                    keep("loader+c", loader_alone(trainer, args.warmup, args.steps))
                    result = engine(trainer, args.warmup, args.steps)
                    result.note = f"{result.note}; {note}"
                    keep("engine+c", result)
            finally:
                trainer.close()
    labels = {"loader": "loader alone (main thread: workers = 0)" if not args.workers else
              "loader alone", "hand": "hand-written step, fixed batch",
              "alone": "method.training_step, fixed batch",
              "+loader": "method step + loader, no engine", "engine": "engine (Trainer.fit)",
              "loader+c": "loader alone, image cache", "engine+c": "engine, image cache"}
    for name, label in labels.items():
        if name in best:
            print(_line(name, best[name]) + f"   <- {label}")
    if {"engine", "+loader", "hand", "loader"} <= best.keys():
        engine_ms, loop_ms = best["engine"].ms_per_step, best["+loader"].ms_per_step
        hand_loop = best["hand"].ms_per_step + best["loader"].ms_per_step
        gap_engine, gap_loop = best["engine"].gap_ms or 0.0, best["+loader"].gap_ms or 0.0
        print(f"  between steps (median; batch fetch + loop work): engine {gap_engine:.1f} ms, "
              f"method + loader loop {gap_loop:.1f} ms: the engine's own host work is "
              f"{gap_engine - gap_loop:+.1f} ms per step")
        print(f"  per step: engine {engine_ms:.1f} ms, hand-written step + loader "
              f"{hand_loop:.1f} ms ({100 * (engine_ms - hand_loop) / hand_loop:+.1f} %), "
              f"method step + loader {loop_ms:.1f} ms")
        print(f"  data loading is {100 * best['loader'].ms_per_step / engine_ms:.0f} % of an "
              "engine step" + (f", {100 * best['loader+c'].ms_per_step / engine_ms:.0f} % with "
                               "the image cache" if "loader+c" in best else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=[],
                        help="method names (default: baseline and every installed method)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None,
                        help="loader.workers (default: the recipe's on CPU, 8 on CUDA)")
    parser.add_argument("--cache-gb", type=float, default=4.0,
                        help="engine+: decoded-image cache budget (0: off)")
    parser.add_argument("--compile", action="store_true", help="engine+: torch.compile")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="CPU: best of N")
    parser.add_argument("--main-threads", type=int, default=0,
                        help="torch threads of the main process (0: torch's default); fewer "
                             "leave the cores to the loader workers")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--matrix", action="store_true",
                        help="on CPU: run the GPU table (every method, alone/engine/engine+) "
                             "too, e.g. shrunk with --set loader.height=64 --set "
                             "loader.width=32 to check it before a GPU session")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="recipe overrides for the table")
    args = parser.parse_args()
    args.warmup = max(args.warmup, 1)
    if args.main_threads:
        torch.set_num_threads(args.main_threads)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = "cuda" if cuda else "cpu"
    if cuda and args.workers is None:
        args.workers = min(8, max((os.cpu_count() or 2) - 2, 1))
    plugins = get_plugins()
    print(f"torch {torch.__version__}, python {sys.version.split()[0]}, "
          f"{torch.cuda.get_device_name() if cuda else 'CPU only'}, "
          f"{os.cpu_count()} CPUs, steps {args.steps} after {args.warmup} warm-up")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cache_root = os.environ.get("REID_BENCH_DATA", str(tmp / "synthetic"))
        for case in discover(plugins, cuda or args.matrix, args.methods, cache_root):
            try:
                if cuda or args.matrix:
                    for precision in args.precisions if cuda else ["fp32"]:
                        run_matrix_case(plugins, case, precision, args, tmp, device)
                else:
                    run_cpu(plugins, case, args, tmp)
            except Exception as exc:  # one method that cannot build must not stop the rest
                print(f"  {case.label}: skipped ({type(exc).__name__}: {exc})", flush=True)


if __name__ == "__main__":
    main()

"""Where a training step's time goes: torch.profiler over one epoch of the engine and of the
hand-written loop of ``benchmarks/train_throughput.py`` (same recipe, model, data, losses).

Prints, for each loop: seconds per step; the share of data loading (``enumerate(DataLoader)``),
forward + backward, and the optimizer step; how many host-device synchronisations each step
makes (``aten::_local_scalar_dense``: every ``float(tensor)`` / ``.item()``; on a GPU each one
makes the host wait for the GPU to finish everything queued); then the operators with the
most self time. On CUDA the tables add device time and the chrome traces show the gaps.

    python benchmarks/profile_steps.py [RECIPE] [--steps N] [--trace DIR] [--set KEY=VALUE]
    python benchmarks/profile_steps.py flipreid-market1501 --synthetic --steps 20  # on a GPU
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import train_throughput  # noqa: E402

from reidcore.engine.distributed import DistInfo  # noqa: E402
from reidcore.engine.trainer import Trainer  # noqa: E402

GROUPS = {  # profiler event name prefixes -> what they are
    "data loading": ("enumerate(DataLoader)",),
    "optimizer step": ("Optimizer.step",),
    "backward": ("autograd::engine::evaluate_function",),
}
SYNC_EVENT = "aten::_local_scalar_dense"


def activities() -> list[ProfilerActivity]:
    found = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        found.append(ProfilerActivity.CUDA)
    return found


def sync_sites(prof: Any) -> Counter:
    """``float()``/``.item()`` calls by where they happen: in data loading, in the
    optimizer step (Adam's CPU step counters) or in the training step itself."""
    sites: Counter = Counter()
    for event in prof.events():
        if event.name != SYNC_EVENT:
            continue
        site, parent = "training step", event.cpu_parent
        while parent is not None:
            if parent.name.startswith(GROUPS["data loading"]):
                site = "data loading"
                break
            if parent.name.startswith(GROUPS["optimizer step"]):
                site = "optimizer step"
                break
            parent = parent.cpu_parent
        sites[site] += 1
    return sites


def summarize(name: str, prof: Any, steps: int, trace_dir: Path | None) -> None:
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    print(f"\n== {name}: {steps} steps, {1000 * total / steps:.1f} ms of host (CPU) time per "
          f"step")
    for group, prefixes in GROUPS.items():
        seconds = sum(e.cpu_time_total for e in events if e.key.startswith(prefixes)) / 1e6
        print(f"   {group:15s} {1000 * seconds / steps:8.1f} ms/step  "
              f"({100 * seconds / total:4.1f} %)")
    where = sync_sites(prof)
    print("   float()/.item() calls per step: "
          + ", ".join(f"{site} {count / steps:.1f}" for site, count in where.most_common())
          + "  (on a GPU, those of the step itself wait for the device; the data loader's "
            "and Adam's read CPU tensors)")
    sort = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    print(events.table(sort_by=sort, row_limit=15, max_name_column_width=55))
    if trace_dir is not None:
        trace_dir.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(trace_dir / f"{name.split()[0]}.json"))


def synthetic_loader(root: Path) -> Any:
    """``train_throughput.load`` on synthetic data (see train_gpu.py)."""
    import train_gpu

    from reidcore.plugins import get_plugins
    from reidcore.recipe import find_recipe, read_toml, resolve

    def load(recipe_ref: str, overrides: list[str]) -> tuple[Any, Any]:
        plugins = get_plugins()
        path = find_recipe(recipe_ref, plugins.recipe_dirs())
        raw = train_gpu._synthetic(read_toml(path), str(root))
        sets = [*train_gpu.METHOD_SETS.get(raw["method"]["name"], []), *overrides]
        return plugins, resolve(raw, str(path), plugins.registry, plugins.hook,
                                overrides=sets)

    return load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", default="quickstart")
    parser.add_argument("--steps", type=int, default=15, help="steps (one epoch of this many)")
    parser.add_argument("--trace", type=Path, default=None, help="write chrome traces here")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--synthetic", action="store_true",
                        help="train on synthetic data of the recipe's image size (paper "
                             "recipes without their data set; pretrained weights off)")
    args = parser.parse_args()
    overrides = ["train.epochs=1", f"train.steps_per_epoch={args.steps}", "train.log_every=10",
                 *args.overrides]
    load = train_throughput.load
    if args.synthetic:
        load = synthetic_loader(Path(tempfile.mkdtemp()) / "synthetic")
    plugins, recipe = load(args.recipe, overrides)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, recipe "
          f"{args.recipe} {overrides}, loader.workers = {recipe.loader.workers}")

    # warm both paths once (allocator, oneDNN primitive caches), then profile
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(2):
            trainer = Trainer(recipe, plugins, Path(tmp) / f"run{run}", False, DistInfo(),
                              quiet=True)
            trainer.setup()
            trainer.evaluate = lambda *a, **k: False
            trainer.save_checkpoint = lambda *a, **k: None
            if run == 0:
                trainer.fit()
            else:
                with profile(activities=activities()) as prof:
                    trainer.fit()
                summarize("engine (Trainer.fit)", prof, args.steps, args.trace)
            trainer.close()
    # the hand-written loop makes one pass of the sampler (it ignores steps_per_epoch)
    _, hand_recipe = load(args.recipe, ["train.epochs=1", *args.overrides])
    from reidcore.data.loaders import build_train_loader

    steps = 0
    plugins_ = plugins
    datasets = [plugins_.registry.get("dataset", s.name).create(s.config).load()
                for s in hand_recipe.data.source]
    steps = len(build_train_loader(datasets, [], hand_recipe.loader, seed=hand_recipe.seed))
    train_throughput.hand_run(plugins, hand_recipe)  # warm
    with profile(activities=activities()) as prof:
        train_throughput.hand_run(plugins, hand_recipe)
    summarize("hand-written loop (train_throughput.py)", prof, steps, args.trace)


if __name__ == "__main__":
    main()

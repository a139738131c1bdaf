"""Does CUT-reid's translator produce real-style images? Measured against the ground truth.

Two arms of ``cut-reid-synthetic`` (its full budget: 10 epochs x 30 steps), each one seed
group of the core's multi-seed runner (``reid run --seeds``, one torch thread, the two arms
at once):

* ``cut_reid``: the recipe as shipped;
* ``no_translation``: the clean ablation, ``method.translation = false`` (the re-ID branch
  alone; its translator is never trained).

``--recipe`` picks the budget, recipe options only (``RECIPES``): ``shipped`` is
``cut-reid-synthetic`` as packaged; ``long`` is the same recipe with every stage ten times
longer (100 epochs x 30 steps; the milestones scaled with it, 80 and 60/80), for both arms,
so the translator is not judged at a budget where it is still noise (about 40 min for seed
0 of both arms on one thread each).

Then each run's final checkpoint (its last epoch: the "best" one is picked by mAP) is
measured by the core (``reidcore.api.measure_mechanism``): ``translate`` on ``--samples``
seeded synthetic-style training images against the true render of the same scene and
person in the ``real`` style (L1 and SSIM, in [0, 1]), beside "no translation" (the input
itself), against two truths - through the ``real`` camera of the same index
(``fidelity``), and through the ``real`` camera closest to each candidate, one per
synthetic camera (``fidelity_closest_camera``): unpaired data does not say which real
camera goes with which synthetic one, so even a perfect unpaired translator matches the
same-index truth only by chance. The script writes these with the re-ID figures
(``reid compare``: mean +- sd, and cut_reid minus no_translation paired over the seeds) to
``results/translation_evidence[_<recipe>].json`` and the first seed's grid (rows: input,
translation, same-index truth, closest-camera truth) to
``results/translation_grid[_<recipe>].png``. Completed runs are reused.

    python plugins/cut-reid/benchmarks/translation_evidence.py --out /tmp/cut --seeds 0 1 2
    python plugins/cut-reid/benchmarks/translation_evidence.py --recipe long --out /tmp/l --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ARMS = {"cut_reid": [], "no_translation": ["method.translation=false"]}
RECIPES = {
    "shipped": [],
    "long": ["train.epochs=100", "method.milestones=[80]", "method.reid_milestones=[60,80]",
             "train.eval_every=50", "method.log_images_every=10"],
}
RESULTS = Path(__file__).with_name("results")


def result_paths(recipe: str) -> tuple[Path, Path]:
    """The JSON and grid of ``recipe`` (the shipped recipe's keep their first names)."""
    suffix = "" if recipe == "shipped" else f"_{recipe}"
    return (RESULTS / f"translation_evidence{suffix}.json",
            RESULTS / f"translation_grid{suffix}.png")


def run_arms(out: Path, seeds: list[int], recipe: str) -> None:
    reid = str(Path(sys.executable).with_name("reid"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "REID_PROGRESS": "0"}
    running = []
    for arm, overrides in ARMS.items():
        command = [reid, "run", "cut-reid-synthetic", "--out", str(out / arm), "--seeds",
                   *map(str, seeds),
                   *(a for item in [*RECIPES[recipe], *overrides] for a in ("--set", item))]
        running.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL))
    if any(process.wait() != 0 for process in running):
        raise SystemExit(f"a run failed: run the arms' commands by hand in {out}")


TRUTHS = ("fidelity", "fidelity_closest_camera")


def last_checkpoint(run: Path) -> Path:
    epochs = sorted((run / "checkpoints").glob("epoch-*.pt"))
    if not epochs:
        raise SystemExit(f"{run}: no epoch checkpoint to measure")
    return epochs[-1]


def measure(out: Path, seeds: list[int], samples: int) -> dict[str, dict[int, Any]]:
    """Per arm and seed, the core's translation report of the run's last checkpoint; the
    grid of the first seed's ``cut_reid`` run is saved as ``out/translation_grid.png``."""
    from reidcore.api import measure_mechanism, save_png
    from reidcore.testing import installed_plugins

    plugins = installed_plugins()
    reports: dict[str, dict[int, Any]] = {}
    for arm in ARMS:
        for seed in seeds:
            run = out / arm / f"seed-{seed}"
            report, grids = measure_mechanism(run, plugins=plugins, samples=samples,
                                              checkpoint=last_checkpoint(run))
            reports.setdefault(arm, {})[seed] = report["translation"]
            if arm == "cut_reid" and seed == seeds[0]:
                save_png(grids["translation"], out / "translation_grid.png")
    return reports


def fidelity(per_seed: dict[int, Any]) -> dict[str, Any]:
    """Per truth, candidate (the translation, no translation) and metric: mean +- sd over
    seeds of each run's mean over its sampled images."""
    seeds = sorted(per_seed)
    table: dict[str, Any] = {}
    for truth in TRUTHS:
        for candidate in ("method", "no_translation"):
            for metric in ("l1", "ssim"):
                values = [per_seed[s][truth][candidate][metric]["mean"] for s in seeds]
                table[f"{truth}/{candidate}/{metric}"] = {
                    "mean": statistics.mean(values),
                    "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "per_seed": values}
    table["closest_camera"] = {seed: per_seed[seed]["closest_camera"] for seed in seeds}
    return table


def main() -> None:
    from reidcore.api import atomic_write_text
    from reidcore.testing import compare_runs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the two seed groups")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="shipped",
                        help="the budget: cut-reid-synthetic as shipped, or ten times longer")
    parser.add_argument("--samples", type=int, default=64,
                        help="synthetic images translated per run (64)")
    parser.add_argument("--json", type=Path, help="default: results/translation_evidence"
                        "[_<recipe>].json")
    args = parser.parse_args()
    default_json, grid_path = result_paths(args.recipe)
    json_path = args.json or default_json
    run_arms(args.out, args.seeds, args.recipe)
    reports = measure(args.out, args.seeds, args.samples)
    comparison, printed = compare_runs([args.out / "no_translation", args.out / "cut_reid"],
                                       ["mAP", "rank1"])
    result = {"command": " ".join(["python", "plugins/cut-reid/benchmarks/"
                                   "translation_evidence.py", *sys.argv[1:]]),
              "recipe": "cut-reid-synthetic", "overrides": RECIPES[args.recipe],
              "seeds": args.seeds, "torch_threads": 1, "samples": args.samples,
              "checkpoint": "last epoch",
              "translation_fidelity": {arm: fidelity(reports[arm]) for arm in ARMS},
              "reid": comparison}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")
    shutil.copyfile(args.out / "translation_grid.png", grid_path)
    for arm, table in result["translation_fidelity"].items():
        for name, row in table.items():
            if name != "closest_camera":
                print(f"{arm:15s} {name:45s} {row['mean']:.4f} +- {row['sd']:.4f}  "
                      f"({', '.join(f'{v:.4f}' for v in row['per_seed'])})")
    print(printed)
    print(f"written: {json_path}, {grid_path}")


if __name__ == "__main__":
    main()

"""Plain vs flip-TTA vs FlipReID on the synthetic data, equal budgets, several seeds.

Each variant trains the ``flipreid-synthetic`` recipe (or ``--recipe``) with the same
number of epochs, steps, batches and schedule; only ``method.variant`` and ``seed`` change.
FlipReID's steps cost about twice as much compute (two forward/backward views), which the
printed seconds show; ``--equal-compute`` gives the other two variants twice the epochs.

    python plugins/flipreid/benchmarks/variants.py --seeds 0 1 2 [--set train.epochs=8]

Prints one row per run and mean +- standard deviation per variant, and writes them as JSON
(``--json PATH``). It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

VARIANTS = ("plain", "flip_tta", "flipreid")


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def run_one(recipe_ref: str, variant: str, seed: int, overrides: list[str], out: Path,
            test_set: str, epochs_factor: int = 1) -> dict[str, float]:
    from reidcore.api import load_recipe
    from reidcore.testing import installed_plugins, resolve_recipe, run_recipe

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path, _ = load_recipe(recipe_ref, installed_plugins())
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    raw.pop("losses", None)  # the method's defaults per variant (flipping only for flipreid)
    sets = [f"method.variant={variant}", f"seed={seed}", *overrides]
    recipe = resolve_recipe(raw, overrides=sets)
    if epochs_factor != 1:
        recipe.train.epochs *= epochs_factor
        recipe.train.eval_every = recipe.train.epochs
    started = time.perf_counter()
    summary = run_recipe(recipe, out / f"{variant}-seed{seed}", name=f"{path.stem}-{variant}")
    seconds = time.perf_counter() - started
    metrics = summary["metrics"][test_set]
    return {"mAP": float(metrics["mAP"]), "rank1": float(metrics["rank1"]),
            "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="flipreid-synthetic")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="recipe override, as `reid run --set`")
    parser.add_argument("--test-set", default="synthetic")
    parser.add_argument("--equal-compute", action="store_true",
                        help="plain and flip_tta train twice the epochs (FlipReID's steps "
                             "embed two views)")
    parser.add_argument("--out", type=Path, default=None, help="run directories (default: tmp)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="flipreid-variants-"))
    results: dict[str, list[dict[str, float]]] = {v: [] for v in args.variants}
    for seed in args.seeds:
        for variant in args.variants:
            factor = 2 if args.equal_compute and variant != "flipreid" else 1
            row = run_one(args.recipe, variant, seed, args.overrides, out, args.test_set, factor)
            results[variant].append({"seed": seed, **row})
            print(f"{variant:9s} seed {seed}: mAP {100 * row['mAP']:6.2f}  "
                  f"rank-1 {100 * row['rank1']:6.2f}  {row['seconds']:7.1f}s", flush=True)

    print(f"\n{'variant':9s} {'runs':>4s}  {'mAP mean +- sd':>16s}  {'rank-1 mean +- sd':>18s}"
          f"  {'s/run':>7s}")
    table = {}
    for variant, rows in results.items():
        maps = [100 * r["mAP"] for r in rows]
        r1s = [100 * r["rank1"] for r in rows]
        table[variant] = {"runs": rows, "mAP_mean": statistics.mean(maps), "mAP_sd": sd(maps),
                          "rank1_mean": statistics.mean(r1s), "rank1_sd": sd(r1s)}
        print(f"{variant:9s} {len(rows):4d}  {statistics.mean(maps):7.2f} +- {sd(maps):5.2f}"
              f"  {statistics.mean(r1s):8.2f} +- {sd(r1s):5.2f}"
              f"  {statistics.mean(r['seconds'] for r in rows):7.1f}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()

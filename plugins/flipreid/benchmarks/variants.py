"""Plain vs flip-TTA vs FlipReID on the synthetic data, equal budgets, several seeds.

Each variant trains the ``flipreid-synthetic`` recipe (or ``--recipe``) with the same
number of epochs, steps, batches and schedule; only ``method.variant`` and ``seed`` change.
FlipReID's steps cost about twice as much compute (two forward/backward views), which the
printed seconds show; ``--equal-compute`` gives the other two variants twice the epochs.

    python plugins/flipreid/benchmarks/variants.py --seeds 0 1 2 [--set train.epochs=8]

Each variant is a seed group of the core's multi-seed runner (``reid run --seeds``:
``OUT/<variant>/seed-<N>``, resumable, with ``seeds.json``); the table is ``reid compare``'s
(mean +- sd per variant, each variant minus ``plain`` paired over the seeds). Writes the
per-variant figures and seconds as JSON (``--json PATH``). It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = ("plain", "flip_tta", "flipreid")


def variant_recipe(recipe_ref: str, variant: str, overrides: list[str],
                   epochs_factor: int = 1) -> Any:
    """The recipe of one variant: the method's own losses per variant (flipping only for
    flipreid), the overrides, and the epochs scaled for ``--equal-compute``."""
    from reidcore.api import load_recipe
    from reidcore.testing import installed_plugins, resolve_recipe

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path, _ = load_recipe(recipe_ref, installed_plugins())
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    raw.pop("losses", None)
    recipe = resolve_recipe(raw, overrides=[f"method.variant={variant}", *overrides])
    if epochs_factor != 1:
        recipe.train.epochs *= epochs_factor
        recipe.train.eval_every = recipe.train.epochs
    return recipe


def main() -> None:
    from reidcore.testing import compare_runs, run_seeds

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
    parser.add_argument("--out", type=Path, default=None,
                        help="seed groups, one per variant (default: tmp)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="flipreid-variants-"))
    table: dict[str, dict[str, Any]] = {}
    for variant in args.variants:
        factor = 2 if args.equal_compute and variant != "flipreid" else 1
        recipe = variant_recipe(args.recipe, variant, args.overrides, factor)
        started = time.perf_counter()
        group = run_seeds(recipe, out / variant, args.seeds, name=f"{args.recipe}-{variant}")
        seconds = (time.perf_counter() - started) / len(args.seeds)
        metrics = group["metrics"][args.test_set]
        table[variant] = {
            "seeds": args.seeds, "seconds_per_run": seconds,
            **{f"{name}_{stat}": 100 * metrics[name][stat]
               for name in ("mAP", "rank1") for stat in ("mean", "sd")},
            "per_seed_mAP": {seed: 100 * value
                             for seed, value in metrics["mAP"]["values"].items()}}
        print(f"{variant:9s} mAP {table[variant]['mAP_mean']:6.2f} +- "
              f"{table[variant]['mAP_sd']:5.2f}  {seconds:7.1f} s/run", flush=True)

    _, printed = compare_runs([out / variant for variant in args.variants],
                              ["mAP", "rank1"], args.test_set)
    print(printed)
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()

"""Direct transfer vs CUT-reid on the built-in synthetic -> "real"-style pair.

Every arm trains on the labelled synthetic-style source for the same number of epochs and
steps (the same P x K source batches) and is tested on the real-style query/gallery. Arms:

* ``baseline``: the core's ``baseline`` method on a randomly initialised timm ResNet-18
  (no pretrained weights, like CUT-reid's branch) with the synthetic recipe's loader;
* ``no_translation``: the clean ablation, the ``cut-reid-synthetic`` recipe itself with
  ``method.translation = false``: the same encoder and re-ID branch, data, optimisers and
  schedules, trained by the re-ID loss alone (no GAN, feature-matching or NCE terms);
* ``cut_reid``: the ``cut-reid-synthetic`` recipe (it also learns from the unlabelled
  real-style target images through the translation losses).

``no_translation`` vs ``cut_reid`` isolates the translation; ``baseline`` vs ``cut_reid``
compares two different networks and loss sets. Each arm is one seed group of the core's
multi-seed runner (``reidcore.testing.run_seeds``: ``<out>/<arm>/seed-<N>``, resumable);
prints mAP / rank-1 per seed and ``reid compare``'s table (mean +- sd, each arm minus the
first paired over the seeds); nothing is asserted (TESTING.md: benchmarks print figures).

    python plugins/cut-reid/benchmarks/synthetic_transfer.py --seeds 0 1 2 --epochs 10
    python plugins/cut-reid/benchmarks/synthetic_transfer.py --arms no_translation cut_reid
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[1] / "reid_plugin_cut_reid" / "recipes" / (
    "cut-reid-synthetic.toml")


def raw_recipe() -> dict:
    """``cut-reid-synthetic`` as raw TOML data."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the core depends on tomli there
        import tomli as tomllib

    return tomllib.loads(RECIPE.read_text(encoding="utf-8"))


def baseline_raw(cut: dict) -> dict:
    loader = dict(cut["loader"])
    loader["normalize"] = "imagenet"
    return {"name": "synthetic-direct-transfer", "method": {"name": "baseline"},
            "backbone": {"name": "timm", "model": "resnet18", "last_stride": 1},
            "data": {"source": cut["data"]["source"], "test": cut["data"]["test"]},
            "loader": loader,
            "train": {**cut["train"], "optimizer": "adam", "lr": 3.5e-4,
                      "schedule": "cosine", "warmup_epochs": 1.0},
            "evaluate": {"name": "ranking"}}


def arms(cut: dict) -> dict[str, dict]:
    """The recipes (raw TOML data) of every arm, by name."""
    clean = {**cut, "name": "cut-reid-synthetic-no-translation",
             "method": {**cut["method"], "translation": False}}
    return {"baseline": baseline_raw(cut), "no_translation": clean, "cut_reid": cut}


LABELS = {"baseline": "direct transfer (baseline)", "no_translation": "cut_reid, no translation",
          "cut_reid": "cut_reid"}


def main() -> None:
    from reidcore.testing import compare_runs, resolve_recipe, run_seeds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arms", nargs="+", choices=list(LABELS), default=list(LABELS))
    parser.add_argument("--out", type=Path, default=None, help="the seed groups (default: tmp)")
    args = parser.parse_args()
    cut = raw_recipe()
    if args.epochs:
        cut["train"]["epochs"] = args.epochs
        cut["train"]["eval_every"] = args.epochs
    cut["train"]["device"] = args.device
    every = arms(cut)
    out = args.out or Path(tempfile.mkdtemp(prefix="cut-reid-transfer-"))
    for name in args.arms:
        recipe = resolve_recipe(every[name])
        group = run_seeds(recipe, out / name, args.seeds, name=recipe.name)
        values = group["metrics"]["synthetic"]
        for seed in args.seeds:
            print(f"seed {seed:3d}  {LABELS[name]:28s} "
                  f"mAP {100 * values['mAP']['values'][str(seed)]:6.2f}  "
                  f"rank-1 {100 * values['rank1']['values'][str(seed)]:6.2f}", flush=True)
    _, printed = compare_runs([out / name for name in args.arms], ["mAP", "rank1"])
    print(printed)


if __name__ == "__main__":
    main()

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
compares two different networks and loss sets. Prints mAP / rank-1 per seed and the mean
and standard deviation; nothing is asserted (see TESTING.md: benchmarks print figures).

    python plugins/cut-reid/benchmarks/synthetic_transfer.py --seeds 0 1 2 --epochs 10
    python plugins/cut-reid/benchmarks/synthetic_transfer.py --arms no_translation cut_reid
"""

from __future__ import annotations

import argparse
import statistics
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
    from reidcore.testing import resolve_recipe, run_recipe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arms", nargs="+", choices=list(LABELS), default=list(LABELS))
    args = parser.parse_args()
    cut = raw_recipe()
    if args.epochs:
        cut["train"]["epochs"] = args.epochs
        cut["train"]["eval_every"] = args.epochs
    cut["train"]["device"] = args.device
    every = arms(cut)
    raws = {LABELS[name]: every[name] for name in args.arms}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in raws}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name, raw in raws.items():
                recipe = resolve_recipe({**raw, "seed": seed})
                out = Path(tmp) / f"{name.replace(' ', '_').replace(',', '')}-{seed}"
                summary = run_recipe(recipe, out, name=recipe.name)
                metrics = summary["metrics"]["synthetic"]
                results[name].append((metrics["mAP"], metrics["rank1"]))
                print(f"seed {seed:3d}  {name:28s} mAP {100 * metrics['mAP']:6.2f}  "
                      f"rank-1 {100 * metrics['rank1']:6.2f}", flush=True)
    print("\nmethod                        mAP mean (sd)    rank-1 mean (sd)   seeds")
    for name, values in results.items():
        maps, r1s = [100 * v[0] for v in values], [100 * v[1] for v in values]
        sd = (statistics.stdev(maps), statistics.stdev(r1s)) if len(values) > 1 else (0, 0)
        print(f"{name:28s} {statistics.mean(maps):6.2f} ({sd[0]:4.2f})   "
              f"{statistics.mean(r1s):6.2f} ({sd[1]:4.2f})      {len(values)}")


if __name__ == "__main__":
    main()

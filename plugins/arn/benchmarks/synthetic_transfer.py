"""Direct transfer vs ARN, its difference-loss fix and the ablation on the built-in
synthetic -> "real"-style pair; writes the results and every arm's loss curves as JSON.

Per seed, one source-only pretraining run (``arn-synthetic-pretrain`` with that seed) is
trained; evaluated on the real-style test set it is the DIRECT TRANSFER arm. Every ARN arm
then starts from that same pretrained network and adapts for the same number of epochs
and steps (``arn-synthetic`` with ``[requires.pretrained].run`` pointing at it):

* ``arn``: the recipe as shipped (CE + 0.1 x (rec + dif + mmd + ctr), the code's raw
  dot-product difference loss, lr 0.01);
* ``arn_lr_1e-3``: the same at the code's learning rate 1e-3;
* ``private_from_shared``: the same with E_S and E_T starting as copies of the pretrained
  E_C (``method.private_init = "shared"``) instead of the untrained stage 4;
* ``dsn``: ``method.difference = "dsn"`` (the difference loss on batch-centred,
  L2-normalised features, mean squared cross-correlation, as Domain Separation Networks'
  released code), weights unchanged;
* ``dsn_1500``: the same at the paper's difference weight (gamma = 1500);
* ``no_private``: ``generators.network.private = false`` (no E_S / E_T: the decoder reads
  e_c alone, no difference loss);
* ``source_losses``: a control for the extra training every ARN arm gets: the same steps
  with only CE + 0.1 x contrastive on the source (w_rec = w_dif = w_mmd = 0; the target
  batches still pass through E_I and E_C, so they enter the batch-norm running statistics);
* ``no_mmd`` (not run by default): ``method.w_mmd = 0``.

Each arm is one seed group of the core's multi-seed runner (``reid run --seeds``, one
process per arm, same thread count for every arm): ``direct/seed-<N>`` holds the pretrained
networks, and every ARN arm's ``--set requires.pretrained.run=.../direct/seed-{seed}``
adapts the one of its own seed. Prints mAP /
rank-1 per seed, the mean and the sample standard deviation, and writes them with the
training curves (every ``--log-every`` steps: each loss, the classifier's accuracy and
the mean L2 norm of the pooled shared / private features, one list per key) to ``--json``;
nothing is asserted.

    OMP_NUM_THREADS=1 python plugins/arn/benchmarks/synthetic_transfer.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reidcore.api import atomic_write_text

ARMS = {"arn": [], "arn_lr_1e-3": ["train.lr=0.001"], "dsn": ["method.difference=dsn"],
        "dsn_1500": ["method.difference=dsn", "method.w_dif=1500"],
        "no_private": ["generators.network.private=false"],
        "private_from_shared": ["method.private_init=shared"],
        "source_losses": ["method.w_rec=0", "method.w_dif=0", "method.w_mmd=0"],
        "no_mmd": ["method.w_mmd=0"]}
DEFAULT_ARMS = ["arn", "arn_lr_1e-3", "private_from_shared", "dsn", "dsn_1500", "no_private",
                "source_losses"]
LABELS = {"direct": "direct transfer (source-only pretraining)",
          "arn": "ARN as shipped (the code's dot-product L_dif, w_dif 0.1)",
          "arn_lr_1e-3": "ARN as shipped at the code's lr 1e-3",
          "dsn": "ARN, difference = \"dsn\" (w_dif 0.1)",
          "dsn_1500": "ARN, difference = \"dsn\", w_dif 1500 (the paper's gamma)",
          "no_private": "ARN without private encoders (no L_dif)",
          "private_from_shared": "ARN as shipped, E_S / E_T start as copies of E_C",
          "source_losses": "control: CE + 0.1 ctr on the source only (no rec, dif, mmd)",
          "no_mmd": "ARN without MMD"}
DEFAULT_JSON = Path(__file__).with_name("results") / "synthetic_transfer.json"
CURVE_KEYS = ("loss", "loss/cls", "loss/rec", "loss/dif", "loss/mmd", "loss/ctr", "accuracy",
              "features/shared_norm", "features/private_norm")


def reid_seeds(recipe: str, group: Path, seeds: list[int],
               overrides: list[str]) -> dict[int, dict[str, Any]]:
    """Train ``recipe`` once per seed into the seed group ``group`` (``reid run --seeds``,
    ``{seed}`` in an override is each run's seed): per seed, the run's results."""
    command = [str(Path(sys.executable).with_name("reid")), "run", recipe, "--out", str(group),
               "--seeds", *map(str, seeds)]
    for item in overrides:
        command += ["--set", item]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return {seed: run_results(group / f"seed-{seed}") for seed in seeds}


def run_results(out: Path) -> dict[str, Any]:
    """A finished run's final test metrics and its logged training rows."""
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r.get("kind") == "train"]
    curve = {"step": [r["step"] for r in train],
             **{k: [float(f"{r[k]:.4g}") for r in train] for k in CURVE_KEYS if k in train[0]}}
    return {"metrics": next(iter(summary["metrics"].values())), "curve": curve}


def compact_json(value: Any, indent: int = 0) -> str:
    """Indented JSON whose lists of numbers (the curves) stay on one line each."""
    pad = " " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(k)}: {compact_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}" + ("\n" if not indent else "")
    return json.dumps(value)


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--adapt-epochs", type=int, default=3)
    parser.add_argument("--log-every", type=int, default=2, help="steps between curve points")
    parser.add_argument("--arms", nargs="+", default=DEFAULT_ARMS, choices=list(ARMS))
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="results file")
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs here")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="arn-bench-"))
    runs: dict[str, dict[str, Any]] = {}
    started = time.time()
    pre = root / "direct"
    arms = [("direct", "arn-synthetic-pretrain",
             [f"train.epochs={args.pretrain_epochs}", f"train.eval_every={args.pretrain_epochs}"])]
    arms += [(arm, "arn-synthetic",
              [f"train.epochs={args.adapt_epochs}", f"train.eval_every={args.adapt_epochs}",
               "requires.pretrained.recipe=''", f"requires.pretrained.run='{pre}/seed-{{seed}}'",
               *ARMS[arm]]) for arm in args.arms]
    for arm, recipe, overrides in arms:
        results = reid_seeds(recipe, root / arm, args.seeds,
                             [f"train.log_every={args.log_every}", *overrides])
        for seed, result in results.items():
            runs.setdefault(arm, {})[str(seed)] = {
                "overrides": ARMS.get(arm, []),
                "mAP": 100 * result["metrics"]["mAP"],
                "rank1": 100 * result["metrics"]["rank1"], "curve": result["curve"]}
            print(f"seed {seed} {arm}: mAP {100 * result['metrics']['mAP']:.2f} rank-1 "
                  f"{100 * result['metrics']['rank1']:.2f} ({time.time() - started:.0f} s)",
                  flush=True)
    elapsed = time.time() - started
    summary = {}
    for arm, per_seed in runs.items():
        maps = [r["mAP"] for r in per_seed.values()]
        r1s = [r["rank1"] for r in per_seed.values()]
        summary[arm] = {"label": LABELS[arm], "mAP_mean": statistics.mean(maps),
                        "mAP_sd": sd(maps), "rank1_mean": statistics.mean(r1s),
                        "rank1_sd": sd(r1s), "mAP_per_seed": maps}
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    result = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "seeds": args.seeds, "pretrain_epochs": args.pretrain_epochs,
              "adapt_epochs": args.adapt_epochs, "steps_per_epoch": 30,
              "torch_threads": threads, "wall_s": round(elapsed),
              "summary": summary, "runs": runs}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, compact_json(result))
    print(f"\n{len(args.seeds)} seeds, pretraining {args.pretrain_epochs} x 30 steps, "
          f"adaptation {args.adapt_epochs} x 30 steps, torch threads {threads}, "
          f"{elapsed:.0f} s; written to {args.json}")
    print("| arm | mAP mean (sd) | rank-1 mean (sd) | mAP per seed |")
    print("|---|---|---|---|")
    for row in summary.values():
        print(f"| {row['label']} | {row['mAP_mean']:.2f} ({row['mAP_sd']:.2f}) | "
              f"{row['rank1_mean']:.2f} ({row['rank1_sd']:.2f}) | "
              f"{', '.join(f'{v:.2f}' for v in row['mAP_per_seed'])} |")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

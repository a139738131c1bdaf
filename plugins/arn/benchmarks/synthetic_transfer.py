"""Direct transfer vs ARN and two ablations on the built-in synthetic -> "real"-style pair.

Per seed, one source-only pretraining run (``arn-synthetic-pretrain`` with that seed) is
trained; evaluated on the real-style test set it is the DIRECT TRANSFER arm. Every ARN arm
then starts from that same pretrained network and adapts for the same number of epochs
and steps (``arn-synthetic`` with ``[requires.pretrained].run`` pointing at it):

* ``arn``: the recipe as shipped (CE + 0.1 x (rec + dif + mmd + ctr));
* ``no_private``: ``generators.network.private = false`` (no E_S / E_T: the decoder reads
  e_c alone, no difference loss);
* ``no_mmd``: ``method.w_mmd = 0``.

Each run is a fresh ``reid run`` process (same thread count for every arm). Prints mAP /
rank-1 per seed, the mean and the sample standard deviation; nothing is asserted.

    python plugins/arn/benchmarks/synthetic_transfer.py --seeds 0 1 2
    python plugins/arn/benchmarks/synthetic_transfer.py --pretrain-epochs 8 --adapt-epochs 3
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

ARMS = {"arn": [], "no_private": ["generators.network.private=false"],
        "no_mmd": ["method.w_mmd=0"]}
LABELS = {"direct": "direct transfer (source-only pretraining)", "arn": "ARN",
          "no_private": "ARN without private encoders", "no_mmd": "ARN without MMD"}


def reid(recipe: str, out: Path, overrides: list[str]) -> dict[str, float]:
    """Train ``recipe`` into ``out`` with ``--set`` overrides; the final test metrics."""
    command = [str(Path(sys.executable).with_name("reid")), "run", recipe, "--out", str(out)]
    for item in overrides:
        command += ["--set", item]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())
    return next(iter(summary["metrics"].values()))


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--adapt-epochs", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs here")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="arn-bench-"))
    results: dict[str, list[tuple[float, float]]] = {}
    started = time.time()
    for seed in args.seeds:
        pre = root / f"seed{seed}-pretrained"
        m = reid("arn-synthetic-pretrain", pre,
                 [f"seed={seed}", f"train.epochs={args.pretrain_epochs}",
                  f"train.eval_every={args.pretrain_epochs}"])
        results.setdefault("direct", []).append((100 * m["mAP"], 100 * m["rank1"]))
        print(f"seed {seed} direct: mAP {100 * m['mAP']:.2f} rank-1 {100 * m['rank1']:.2f} "
              f"({time.time() - started:.0f} s)", flush=True)
        for arm in args.arms:
            m = reid("arn-synthetic", root / f"seed{seed}-{arm}",
                     [f"seed={seed}", f"train.epochs={args.adapt_epochs}",
                      f"train.eval_every={args.adapt_epochs}", "requires.pretrained.recipe=''",
                      f"requires.pretrained.run='{pre}'", *ARMS[arm]])
            results.setdefault(arm, []).append((100 * m["mAP"], 100 * m["rank1"]))
            print(f"seed {seed} {arm}: mAP {100 * m['mAP']:.2f} rank-1 {100 * m['rank1']:.2f} "
                  f"({time.time() - started:.0f} s)", flush=True)
    print(f"\n{len(args.seeds)} seeds, pretraining {args.pretrain_epochs} x 30 steps, "
          f"adaptation {args.adapt_epochs} x 30 steps, torch threads "
          f"{os.environ.get('OMP_NUM_THREADS', 'default')}, {time.time() - started:.0f} s")
    print("| arm | mAP mean (sd) | rank-1 mean (sd) | mAP per seed |")
    print("|---|---|---|---|")
    for arm, rows in results.items():
        maps, r1s = [r[0] for r in rows], [r[1] for r in rows]
        print(f"| {LABELS[arm]} | {statistics.mean(maps):.2f} ({sd(maps):.2f}) | "
              f"{statistics.mean(r1s):.2f} ({sd(r1s):.2f}) | "
              f"{', '.join(f'{v:.2f}' for v in maps)} |")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

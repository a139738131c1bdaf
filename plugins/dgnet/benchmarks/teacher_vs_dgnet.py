"""Teacher alone vs DG-Net on the synthetic pedestrians, 3 seeds, equal iteration budgets.

The seeds are one seed group of the core's multi-seed runner (``reid run dgnet-synthetic
--seeds ...``: ``OUT/dgnet/seed-<N>``, each the teacher recipe first, then DG-Net with that
teacher, every stage with the seed) with the same number of iterations for both stages, so
the two arms are the teacher alone (``seed-<N>-teacher``) and DG-Net (``seed-<N>``). The
seeds are filled as parallel processes (one torch thread each, to fit the shared machine's
budget), then one pass of the same command over all seeds (completed runs are kept) writes
the group's ``seeds.json``.

    python plugins/dgnet/benchmarks/teacher_vs_dgnet.py --out /tmp/dgnet-bench [--iters 100]

Prints and writes ``results.json``: per seed and arm mAP / rank-1 and the mean and sample
standard deviation over the seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SEEDS = (0, 1, 2)


def overrides(iters: int) -> list[str]:
    """The stages' budgets (the seed of each stage is the group's)."""
    epochs, steps = 2, iters // 2
    warm = int(0.3 * iters)
    common = [f"train.epochs={epochs}", f"train.steps_per_epoch={steps}",
              f"train.eval_every={epochs}"]
    teacher = [*common, f"train.milestones=[{epochs - 1}]"]
    dgnet = [*common, f"method.warm_iter={warm}", f"method.warm_teacher_iter={warm}",
             f"method.milestones=[{int(0.8 * iters)}]", f"method.log_images_every={iters}",
             "requires.teacher.set=" + json.dumps(teacher)]
    return [a for item in dgnet for a in ("--set", item)]


def metrics(run: Path) -> dict[str, float]:
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    found = summary["metrics"]["synthetic"]
    return {"mAP": 100 * found["mAP"], "rank1": 100 * found["rank1"],
            "train_seconds": summary["train_seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iters", type=int, default=100, help="iterations of each stage")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    reid = str(Path(sys.executable).with_name("reid"))
    env = {**os.environ, "REID_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    group = args.out / "dgnet"
    command = [reid, "run", "dgnet-synthetic", "--out", str(group), *overrides(args.iters)]
    procs = {}
    for seed in SEEDS:
        log = (args.out / f"seed{seed}.log").open("w")
        procs[seed] = subprocess.Popen([*command, "--seeds", str(seed)], stdout=log,
                                       stderr=subprocess.STDOUT, env=env)
    failed = [seed for seed, proc in procs.items() if proc.wait() != 0]
    if failed:
        print(f"seeds {failed} failed: see {args.out}/seed*.log", file=sys.stderr)
        return 1
    subprocess.run([*command, "--seeds", *map(str, SEEDS)], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # every seed completed: writes seeds.json
    rows = {seed: {"teacher": metrics(group / f"seed-{seed}-teacher"),
                   "dgnet": metrics(group / f"seed-{seed}")} for seed in SEEDS}
    summary = {}
    for arm in ("teacher", "dgnet"):
        for key in ("mAP", "rank1"):
            values = [rows[s][arm][key] for s in SEEDS]
            summary[f"{arm}/{key}"] = {"mean": statistics.mean(values),
                                       "std": statistics.stdev(values), "values": values}
    result = {"iterations_per_stage": args.iters, "seeds": list(SEEDS), "runs": rows,
              "summary": summary, "wall_seconds": round(time.perf_counter() - started, 1)}
    (args.out / "results.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    for name, value in summary.items():
        print(f"{name:16s} {value['mean']:6.2f} +- {value['std']:5.2f}  "
              f"({', '.join(f'{v:.2f}' for v in value['values'])})")
    print(f"wall {result['wall_seconds']:.0f}s; results in {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

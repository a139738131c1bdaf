"""Evidence for ``reid export``: shrunk synthetic runs of the baseline and each plugin are
trained, exported to ONNX (parity on the run's test images), and the ``.onnx`` file is
evaluated by ``reid eval``'s code; its mAP is compared with the run's own ``summary.json``.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/export_parity.py --out /tmp/export-parity \\
        [--recipes quickstart flipreid-synthetic ...] [--json benchmarks/results/export_parity.json]

Each run is shrunk with ``--set`` (``--epochs``, ``--steps``): what is measured is the
agreement of the exported model with PyTorch, not what the method learns.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import traceback
from pathlib import Path

DEFAULT_RECIPES = ["quickstart", "flipreid-synthetic", "cut-reid-synthetic", "san-pg-synthetic",
                   "san-synthetic", "dgnet-teacher-synthetic", "dgnet-synthetic",
                   "arn-synthetic-pretrain", "arn-synthetic"]

# chained recipes: their required runs are the shrunk runs of these recipes (trained earlier
# in the list), linked where the chain looks for them (<out>/<recipe>-<role>)
REQUIRED = {"san-synthetic": {"san_pg": "san-pg-synthetic"},
            "dgnet-synthetic": {"teacher": "dgnet-teacher-synthetic"},
            "arn-synthetic": {"pretrained": "arn-synthetic-pretrain"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from reidcore.engine.extract import evaluate_run
    from reidcore.export.run_export import export_onnx
    from reidcore.testing import installed_plugins, run_recipe

    plugins = installed_plugins()
    results = {}
    for name in args.recipes:
        run = args.out / name
        overrides = [f"train.epochs={args.epochs}", f"train.steps_per_epoch={args.steps}",
                     f"train.eval_every={args.epochs}"]
        started = time.perf_counter()
        for role, required in REQUIRED.get(name, {}).items():
            link = args.out / f"{name}-{role}"
            if not link.exists() and (args.out / required).is_dir():
                link.symlink_to((args.out / required).resolve())
        try:
            if _status(run) == "failed":  # e.g. its required run was missing: train again
                shutil.rmtree(run)
            if _status(run) is None:
                run_recipe(name, run, overrides=overrides)
            summary = json.loads((run / "summary.json").read_text())
            result = export_onnx(run, args.out / f"{name}.onnx", plugins=plugins)
            metrics = evaluate_run(args.out / f"{name}.onnx", plugins=plugins)
            test_set = next(iter(summary["metrics"]))  # the run's final evaluation
            own = float(summary["metrics"][test_set]["mAP"])
            onnx_map = metrics[f"{test_set}/mAP"]
            results[name] = {
                "dim": result.parity.dim, "max_abs_diff": result.parity.max_abs_diff,
                "ranking_agreement": result.parity.ranking_agreement,
                "flip": result.flip, "normalise": result.normalise,
                "run_mAP": own, "onnx_mAP": onnx_map, "mAP_equal": abs(own - onnx_map) < 1e-6,
                "test_set": test_set, "seconds": round(time.perf_counter() - started, 1)}
        except Exception as exc:  # noqa: BLE001 - report every recipe, then go on
            results[name] = {"error": f"{type(exc).__name__}: {exc}",
                             "trace": traceback.format_exc(limit=3)}
        print(name, json.dumps(results[name]), flush=True)
    if args.json:  # recipes of earlier invocations are kept, with their commands
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = json.loads(args.json.read_text()) if args.json.is_file() else {"results": {}}
        for name in results:
            report["results"][name] = {**results[name], "command": " ".join(sys.argv),
                                       "epochs": args.epochs, "steps": args.steps}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _status(run: Path) -> str | None:
    summary = run / "summary.json"
    return json.loads(summary.read_text()).get("status") if summary.is_file() else None


if __name__ == "__main__":
    sys.exit(main())

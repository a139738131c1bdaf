"""``reid compare RUN_OR_GROUP ...``: runs and seed groups side by side, paired over seeds.

An *arm* is a completed run directory (one seed, read from its ``recipe.toml``) or a seed
group written by ``reid run --seeds`` (``seeds.json``). The table shows each arm's metrics
(``mean +- sd`` over its seeds); every later arm is compared with the first, paired over the
seeds both ran (:func:`reidcore.statistics.paired_test`), when at least two seeds match.
"""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path
from typing import Any

import attrs

from reidcore.compat import tomllib
from reidcore.errors import ReidError
from reidcore.statistics import paired_test, spread

DEFAULT_METRICS = ("mAP", "rank1")


@attrs.frozen
class Arm:
    """One column group of the comparison: ``values[test set][metric][seed]``."""

    label: str
    values: dict[str, dict[str, dict[int, float]]]


def _group_arm(path: Path) -> Arm:
    from reidcore.engine.seed_group import GROUP_FILE

    data = json.loads((path / GROUP_FILE).read_text(encoding="utf-8"))
    values = {test_set: {metric: {int(seed): float(v) for seed, v in row["values"].items()}
                         for metric, row in metrics.items()}
              for test_set, metrics in data.get("metrics", {}).items()}
    return Arm(label=f"{path} ({len(data.get('seeds', []))} seeds)", values=values)


def _run_arm(path: Path) -> Arm:
    from reidcore.engine.rundir import RunDirectory

    run = RunDirectory(path)
    summary = run.summary()
    if summary is None or summary.get("status") != "completed":
        raise ReidError(f"{path} holds no completed run (its summary.json is missing or says "
                        f"it did not complete); finish it with `reid run ... --out {path} "
                        f"--resume` first")
    try:
        seed = int(tomllib.loads(run.recipe_file.read_text(encoding="utf-8")).get("seed", 0))
    except (OSError, ValueError) as exc:
        raise ReidError(f"cannot read the seed of {path} from {run.recipe_file}: {exc}") from None
    values = {test_set: {metric: {seed: float(v)} for metric, v in metrics.items()
                         if isinstance(v, (int, float))}
              for test_set, metrics in summary.get("metrics", {}).items()}
    return Arm(label=f"{path} (seed {seed})", values=values)


def load_arm(path: Path) -> Arm:
    """A seed group (``seeds.json``) or a completed run directory (``summary.json``)."""
    from reidcore.engine.rundir import RunDirectory
    from reidcore.engine.seed_group import GROUP_FILE

    if (path / GROUP_FILE).is_file():
        return _group_arm(path)
    if RunDirectory(path).summary_file.is_file():
        return _run_arm(path)
    raise ReidError(f"{path} is neither a run directory (no summary.json) nor a seed group "
                    f"(no {GROUP_FILE})")


def _pick(arms: list[Arm], test_set: str | None, metrics: list[str]) -> str:
    """Check the test set and metrics against every arm; return the test set."""
    sets = list(arms[0].values)
    if not sets:
        raise ReidError(f"{arms[0].label} has no metrics")
    chosen = test_set or sets[0]
    for arm in arms:
        if chosen not in arm.values:
            near = difflib.get_close_matches(chosen, list(arm.values), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise ReidError(f"{arm.label} has no test set '{chosen}'{hint}; it has "
                            f"{', '.join(arm.values) or 'none'}")
        for metric in metrics:
            if metric not in arm.values[chosen]:
                near = difflib.get_close_matches(metric, list(arm.values[chosen]), n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                raise ReidError(f"{arm.label} has no metric '{metric}' on {chosen}{hint}; it "
                                f"has {', '.join(sorted(arm.values[chosen]))}")
    return chosen


def compare(paths: list[Path], test_set: str | None = None,
            metrics: list[str] | None = None) -> dict[str, Any]:
    """The comparison as data: per arm the spread of each metric, and per later arm the
    paired test against the first."""
    if len(paths) < 1:
        raise ReidError("reid compare needs at least one run directory or seed group")
    arms = [load_arm(path) for path in paths]
    names = list(metrics or DEFAULT_METRICS)
    chosen = _pick(arms, test_set, names)
    rows = [{"arm": arm.label, "metrics": {
        name: {**spread(list(arm.values[chosen][name].values())).to_dict(),
               "values": {str(k): v for k, v in arm.values[chosen][name].items()}}
        for name in names}} for arm in arms]
    paired = []
    for arm in arms[1:]:
        tests = {name: paired_test(arms[0].values[chosen][name], arm.values[chosen][name])
                 for name in names}
        paired.append({"arm": arm.label, "against": arms[0].label,
                       "tests": {name: test.to_dict() if test else None
                                 for name, test in tests.items()}})
    return {"test_set": chosen, "arms": rows, "paired": paired}


def format_comparison(result: dict[str, Any]) -> str:
    names = list(result["arms"][0]["metrics"])
    width = max(len(row["arm"]) for row in result["arms"])
    lines = [f"test set: {result['test_set']} (metrics x 100: mean +- sd over seeds)",
             f"{'arm':{width}s}  " + "  ".join(f"{name:>16s}" for name in names)]
    for row in result["arms"]:
        cells = [f"{100 * m['mean']:7.2f} +- {100 * m['sd']:5.2f}"
                 for m in row["metrics"].values()]
        lines.append(f"{row['arm']:{width}s}  " + "  ".join(f"{c:>16s}" for c in cells))
    for pair in result["paired"]:
        for name, test in pair["tests"].items():
            if test is None:
                lines.append(f"{pair['arm']} vs {pair['against']}, {name}: no paired test "
                             f"(fewer than two seeds in common)")
                continue
            lines.append(
                f"{pair['arm']} - {pair['against']}, {name}: "
                f"{100 * test['mean_difference']:+.2f} +- {100 * test['sd_difference']:.2f} "
                f"over seeds {' '.join(map(str, test['seeds']))}, exact sign-flip "
                f"p = {test['p_value']:.3g}")
    return "\n".join(lines)


def add_compare_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``reid compare``."""
    parser = subparsers.add_parser(
        "compare", help="runs and seed groups side by side, paired over seeds",
        description="Compare completed runs and seed groups (`reid run --seeds`): each "
                    "metric's mean +- sd per arm, and each arm minus the first, paired over "
                    "the seeds both ran, with the exact sign-flip test's p-value.")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_OR_GROUP")
    parser.add_argument("--metric", action="append", dest="metrics", metavar="NAME",
                        help=f"a metric to compare (repeatable; default "
                             f"{', '.join(DEFAULT_METRICS)})")
    parser.add_argument("--test-set", help="which test set (default: the first arm's first)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=command_compare)


def command_compare(args: argparse.Namespace, plugins: Any) -> int:
    result = compare(args.runs, args.test_set, args.metrics)
    print(json.dumps(result, indent=2) if args.json else format_comparison(result))
    return 0

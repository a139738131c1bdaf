"""One recipe over several seeds: ``reid run RECIPE --seeds 0 1 2``.

Each seed is an ordinary run in its own directory inside the group's directory::

    runs/quickstart-seeds-20260101-120000/
      seed-0/  seed-1/  seed-2/      ordinary run directories (recipe.toml says its seed)
      seed-0-teacher/ ...            the runs a seed's recipe requires (``[requires.*]``)
      seeds.json                     the group: its seeds, runs, and each metric's spread

The recipe's ``seed`` is set for every stage of the chain: a seed group of DG-Net varies the
teacher's seed too, so the spread it reports is the whole workflow's. Started again, the
group skips completed seeds and resumes a killed one, as a multi-stage run does.

An override may name the seed: ``--set requires.pretrained.run=runs/pre/seed-{seed}`` gives
each seed its own value, so several arms can share one seed group's earlier stage (each arm
adapts the pretrained network of its own seed) instead of training it once per arm.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from reidcore.engine.logging import write_json
from reidcore.engine.rundir import RunDirectory
from reidcore.errors import ReidError
from reidcore.statistics import spread

GROUP_FILE = "seeds.json"


def seed_dir(group: Path, seed: int) -> Path:
    return group / f"seed-{seed}"


def with_seed(recipe: Any, seed: int) -> Any:
    """``recipe`` with ``seed``, and every recipe it requires trained with ``seed`` too
    (unless that requirement's own ``set`` names a seed: then it is kept)."""
    requires = {
        role: requirement if not requirement.recipe or any(
            item.split("=", 1)[0].strip() == "seed" for item in requirement.set)
        else attrs.evolve(requirement, set=[*requirement.set, f"seed={seed}"])
        for role, requirement in recipe.requires.items()}
    return attrs.evolve(recipe, seed=seed, requires=requires)


def group_metrics(summaries: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{test set: {metric: spread + per-seed values}}`` over the seeds' summaries; a metric
    is listed when every seed reports it."""
    if not summaries:
        return {}
    first = next(iter(summaries.values())).get("metrics", {})
    table: dict[str, dict[str, Any]] = {}
    for test_set, metrics in first.items():
        for name in metrics:
            values = {seed: s.get("metrics", {}).get(test_set, {}).get(name)
                      for seed, s in summaries.items()}
            if any(not isinstance(v, (int, float)) for v in values.values()):
                continue
            table.setdefault(test_set, {})[name] = {
                **spread([float(v) for v in values.values()]).to_dict(),
                "values": {str(seed): v for seed, v in values.items()}}
    return table


def format_group(metrics: dict[str, dict[str, Any]], names: Sequence[str] = ("mAP", "rank1",
                                                                         "mINP")) -> str:
    """A small table: one row per test set, ``mean +- sd [min, max]`` per metric (x 100)."""
    lines = []
    for test_set, row in metrics.items():
        cells = [f"{name} {100 * row[name]['mean']:.2f} +- {100 * row[name]['sd']:.2f} "
                 f"[{100 * row[name]['min']:.2f}, {100 * row[name]['max']:.2f}]"
                 for name in names if name in row]
        count = next(iter(row.values()))["n"] if row else 0
        lines.append(f"{test_set} ({count} seeds): " + "; ".join(cells))
    return "\n".join(lines)


SEED_PLACEHOLDER = "{seed}"


def seeded_overrides(overrides: Sequence[str], seed: int) -> list[str]:
    """``--set`` overrides with ``{seed}`` replaced by ``seed``."""
    return [item.replace(SEED_PLACEHOLDER, str(seed)) for item in overrides]


def run_seeds(recipe: Any | Callable[[int], Any], plugins: Any, seeds: Sequence[int],
              out: Path | None, *, recipe_name: str = "recipe", source: Path | None = None,
              nproc: int = 1, quiet: bool = False) -> dict[str, Any]:
    """Run ``recipe`` once per seed into ``out/seed-<N>`` (see the module docstring) and
    write ``out/seeds.json``; return that group summary. ``recipe`` may be a function of
    the seed (overrides that name ``{seed}``, resolved per seed)."""
    from reidcore.engine.chain import run_chain

    if len(set(seeds)) != len(seeds):
        raise ReidError(f"--seeds lists a seed twice: {' '.join(map(str, seeds))}")
    if any(seed < 0 for seed in seeds):
        raise ReidError(f"--seeds must be >= 0, got {' '.join(map(str, seeds))}")
    group = out if out is not None else Path("runs") / (
        f"{recipe_name}-seeds-{time.strftime('%Y%m%d-%H%M%S')}")
    if group.exists() and not group.is_dir():
        raise ReidError(f"--out {group} is a file; a seed group needs a directory")
    if RunDirectory(group).started or RunDirectory(group).recipe_file.exists():
        raise ReidError(f"--out {group} is a run directory; a seed group needs its own "
                        f"directory (its seeds' runs go inside it)")
    group.mkdir(parents=True, exist_ok=True)
    summaries: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        target = RunDirectory(seed_dir(group, seed))
        if target.completed:
            if not quiet:
                print(f"seed {seed}: completed run {target} is reused", flush=True)
            summaries[seed] = target.summary() or {}
            continue
        if not quiet:
            print(f"seed {seed}: {'resuming' if target.started else 'training'} in {target}",
                  flush=True)
        seeded = recipe(seed) if callable(recipe) else recipe
        summaries[seed] = run_chain(with_seed(seeded, seed), plugins, target.path,
                                    resume=target.started, recipe_name=recipe_name,
                                    source=source, nproc=nproc, quiet=quiet)
    metrics = group_metrics(summaries)
    summary: dict[str, Any] = {
        "kind": "seed-group", "recipe": recipe_name, "seeds": list(seeds),
        "runs": {str(seed): seed_dir(group, seed).name for seed in seeds}, "metrics": metrics}
    write_json(group / GROUP_FILE, summary)
    if not quiet:
        print(format_group(metrics))
        print(f"seed group: {group}")
    return summary

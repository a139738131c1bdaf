"""New-process ``reid eval`` of saved Market-size features (3,368 x 15,913, 2,048-d).

Writes the two ``.npz`` files once (``--dir``), runs ``reid eval --query ... --gallery ...``
``--repeats`` times as a new process each time and prints each wall time and the median,
then ``python -X importtime -c "import reidcore"`` and the cost of the evaluation imports
(``reidcore.evaluation.evaluator``, numba, torch) measured in a fresh interpreter.

    OMP_NUM_THREADS=2 NUMBA_NUM_THREADS=2 python benchmarks/eval_startup.py

``--before DIR`` times, alternating with the working tree, the ``reid eval`` of another
source tree (``git worktree add DIR COMMIT``): the editable install's import hook is
removed in that process so that ``reidcore`` comes from ``DIR``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from eval_common import id_centres, id_features, market_like_labels  # noqa: E402


def write_features(directory: Path, dim: int) -> tuple[Path, Path]:
    query, gallery = directory / "query.npz", directory / "gallery.npz"
    if query.exists() and gallery.exists():
        return query, gallery
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    q_pids, g_pids, q_cams, g_cams = market_like_labels(rng)
    scale = 4 / np.sqrt(dim)
    centres = id_centres(rng, int(q_pids.max()), dim) * scale
    np.savez(query, features=id_features(rng, q_pids, centres, 3 * scale), pids=q_pids,
             camids=q_cams)
    np.savez(gallery, features=id_features(rng, g_pids, centres, 3 * scale), pids=g_pids,
             camids=g_cams)
    return query, gallery


FROM_TREE = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable___reidcore_" not in repr(f)]
for name in [m for m in sys.modules if m == "reidcore" or m.startswith("reidcore.")]:
    del sys.modules[name]
sys.path.insert(0, sys.argv.pop(1))
from reidcore.cli import main
sys.argv[0] = "reid"
sys.exit(main())
"""


def import_cost(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/reid_eval_startup"))
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--before", type=Path, help="another source tree to time beside")
    options = parser.parse_args()
    query, gallery = write_features(options.dir, options.dim)
    arguments = ["eval", "--query", str(query), "--gallery", str(gallery)]
    commands = {"now": [str(Path(sys.executable).with_name("reid")), *arguments]}
    if options.before:
        commands["before"] = [sys.executable, "-c", FROM_TREE, str(options.before.resolve()),
                              *arguments]
    for command in commands.values():
        subprocess.run(command, check=True, capture_output=True)  # fills numba's cache
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(options.repeats):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"reid eval {name} (new process, Market-size saved features): "
              f"{' '.join(f'{t:.2f}' for t in values)} s; median "
              f"{statistics.median(values):.2f} s")
    for statement in ("import reidcore", "import numba", "import torch",
                      "import reidcore.evaluation.evaluator",
                      "import reidcore.evaluation.evaluator; "
                      "import reidcore.evaluation.ranking as r; r.warm_up()"):
        costs = sorted(import_cost(statement) for _ in range(3))
        print(f"  {statement}: median {costs[1] * 1000:.0f} ms (of 3)")


if __name__ == "__main__":
    main()

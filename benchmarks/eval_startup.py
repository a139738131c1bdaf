"""New-process ``reid eval`` of saved Market-size features (3,368 x 15,913, 2,048-d).

Writes the two ``.npz`` files once (``--dir``), runs ``reid eval --query ... --gallery ...``
``--repeats`` times as a new process each time and prints each wall time and the median,
then ``python -X importtime -c "import reidcore"`` and the cost of the evaluation imports
(``reidcore.evaluation.evaluator``, numba, torch) measured in a fresh interpreter.

    OMP_NUM_THREADS=2 NUMBA_NUM_THREADS=2 python benchmarks/eval_startup.py
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
    options = parser.parse_args()
    query, gallery = write_features(options.dir, options.dim)
    reid = str(Path(sys.executable).with_name("reid"))
    command = [reid, "eval", "--query", str(query), "--gallery", str(gallery)]
    subprocess.run(command, check=True, capture_output=True)  # fills numba's cache
    times = []
    for _ in range(options.repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    print(f"reid eval (new process, Market-size saved features): "
          f"{' '.join(f'{t:.2f}' for t in times)} s; median {statistics.median(times):.2f} s")
    for statement in ("import reidcore", "import numba", "import torch",
                      "import reidcore.evaluation.evaluator",
                      "import reidcore.evaluation.evaluator; "
                      "import reidcore.evaluation.ranking as r; r.warm_up()"):
        costs = sorted(import_cost(statement) for _ in range(3))
        print(f"  {statement}: median {costs[1] * 1000:.0f} ms (of 3)")


if __name__ == "__main__":
    main()

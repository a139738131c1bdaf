"""Sharded-gallery evaluation: ``torchrun --nproc-per-node N reid eval`` at N = 2 and 4
against one process, on MSMT17-sized saved features (11,659 x 82,161, 2,048-d, as
``eval_msmt.py`` makes them).

Each run is a new ``reid eval --json`` under ``/usr/bin/time -v`` (wall time, and the
peak resident memory of the largest process); the machine's cores are split between the
processes (``OMP_NUM_THREADS`` = ``NUMBA_NUM_THREADS`` = cores // N). The metrics of every
N must equal the one-process metrics exactly (mAP, mINP, CMC, TPR@FPR, intervals).

    python benchmarks/eval_sharded.py --dir /tmp/msmt_sharded \
        --out benchmarks/results/eval_sharded.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from eval_common import id_centres, id_features  # noqa: E402
from eval_msmt import msmt_labels  # noqa: E402


def write_features(directory: Path, queries: int, gallery: int, dim: int
                   ) -> tuple[Path, Path]:
    q_path, g_path = directory / "query.npz", directory / "gallery.npz"
    if q_path.exists() and g_path.exists():
        return q_path, g_path
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    q_pids, g_pids, q_cams, g_cams = msmt_labels(rng, queries, gallery,
                                                 num_ids=min(3060, queries))
    scale = 4 / np.sqrt(dim)
    centres = id_centres(rng, int(q_pids.max()), dim) * scale
    np.savez(q_path, features=id_features(rng, q_pids, centres, 3 * scale), pids=q_pids,
             camids=q_cams)
    np.savez(g_path, features=id_features(rng, g_pids, centres, 3 * scale), pids=g_pids,
             camids=g_cams)
    return q_path, g_path


def timed(command: list[str], env: dict[str, str]) -> tuple[dict, float, float]:
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time .*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    assert wall is not None
    hours, minutes, seconds = int(wall.group(1) or 0), int(wall.group(2)), float(wall.group(3))
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    assert rss is not None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result, hours * 3600 + minutes * 60 + seconds, int(rss.group(1)) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/msmt_sharded"))
    parser.add_argument("--queries", type=int, default=11659)
    parser.add_argument("--gallery", type=int, default=82161)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path)
    options = parser.parse_args()
    query, gallery = write_features(options.dir, options.queries, options.gallery,
                                    options.dim)
    reid = str(Path(sys.executable).with_name("reid"))
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    arguments = ["eval", "--query", str(query), "--gallery", str(gallery), "--json"]
    runs = []
    reference = None
    for n in options.processes:
        threads = str(max(1, options.cores // n))
        env = {**os.environ, "OMP_NUM_THREADS": threads, "NUMBA_NUM_THREADS": threads}
        command = ([reid, *arguments] if n == 1 else
                   [torchrun, "--nproc-per-node", str(n), "--master-port", str(29700 + n),
                    reid, *arguments])
        result, wall, rss = timed(command, env)
        reference = reference or result
        same = result == reference
        differ = sorted(key for key in reference if result.get(key) != reference[key])
        runs.append({"processes": n, "threads_each": int(threads), "wall_seconds": wall,
                     "peak_rss_gb_largest_process": rss, "equal_to_first": same,
                     "differing_keys": differ,
                     "mAP": result["mAP"], "tpr_at_fpr": result.get("tpr_at_fpr")})
        print(f"{n} process(es), {threads} thread(s) each: {wall:.1f} s wall, peak RSS "
              f"{rss:.2f} GB (largest process); mAP {result['mAP']:.6f}; equal to the "
              f"first run: {same}{' (differ: ' + ', '.join(differ) + ')' if differ else ''}",
              flush=True)
    if options.out:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps({"queries": options.queries,
                                           "gallery": options.gallery, "dim": options.dim,
                                           "cores": options.cores, "runs": runs},
                                          indent=2) + "\n")


if __name__ == "__main__":
    main()

"""k-reciprocal re-ranking at MSMT17 scale: the streamed path (distance blocks, no N x N
matrix) against the dense one (three full distance matrices) where it fits.

Random MSMT17-shaped features (as ``eval_msmt.py``: 2,048-d, 3,060 ids, 15 cameras), with
the query/gallery split in MSMT17's proportion (11,659 : 82,161) for any total ``--n``.

    # one evaluation in this process: time, peak RSS, metrics (k1=20, k2=6, lambda=0.3)
    OMP_NUM_THREADS=2 NUMBA_NUM_THREADS=2 python benchmarks/eval_rerank_scale.py --n 20000
    python benchmarks/eval_rerank_scale.py --n 20000 --mode dense
    # both paths in one process, per-query results compared
    python benchmarks/eval_rerank_scale.py --n 20000 --mode compare
    # the .npz files for `reid eval --query q.npz --gallery g.npz --rerank`
    python benchmarks/eval_rerank_scale.py --n 93820 --write /tmp/msmt

Peak RSS is the process's ``ru_maxrss`` (features and libraries included); run it under
``/usr/bin/time -v`` for the same figure from outside.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from eval_common import id_centres, id_features  # noqa: E402

MSMT_QUERY, MSMT_GALLERY = 11659, 82161


def problem(n: int, dim: int, seed: int = 0):
    num_q = round(n * MSMT_QUERY / (MSMT_QUERY + MSMT_GALLERY))
    num_g = n - num_q
    rng = np.random.default_rng(seed)
    num_ids = max(10, round(3060 * n / (MSMT_QUERY + MSMT_GALLERY)))
    ids = np.arange(1, num_ids + 1)
    q_pids = rng.choice(ids, num_q)
    g_pids = rng.choice(ids, num_g)
    q_cams, g_cams = rng.integers(0, 15, num_q), rng.integers(0, 15, num_g)
    scale = 4 / np.sqrt(dim)
    centres = id_centres(rng, num_ids, dim) * scale
    qf = id_features(rng, q_pids, centres, 3.0 * scale)
    gf = id_features(rng, g_pids, centres, 3.0 * scale)
    return qf, gf, q_pids, g_pids, q_cams, g_cams


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def dense(qf, gf, labels):
    from reidcore.evaluation import k_reciprocal_rerank, pairwise_distance, rank_metrics

    reranked = k_reciprocal_rerank(pairwise_distance(qf, gf), pairwise_distance(qf, qf),
                                   pairwise_distance(gf, gf))
    return rank_metrics(reranked, *labels), reranked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="query + gallery images")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--mode", choices=["stream", "dense", "compare"], default="stream")
    parser.add_argument("--memory-gb", type=float, default=0.0)
    parser.add_argument("--write", type=Path, help="write query.npz/gallery.npz here, exit")
    options = parser.parse_args()
    qf, gf, *labels = problem(options.n, options.dim)
    print(f"N = {options.n:,}: {len(qf):,} queries x {len(gf):,} gallery, {options.dim}-d; "
          f"dense N x N float32 would be {options.n ** 2 * 4 / 2**30:.1f} GB")
    if options.write:
        options.write.mkdir(parents=True, exist_ok=True)
        np.savez(options.write / "query.npz", features=qf, pids=labels[0], camids=labels[2])
        np.savez(options.write / "gallery.npz", features=gf, pids=labels[1],
                 camids=labels[3])
        print(f"wrote {options.write}/query.npz and gallery.npz")
        return
    from reidcore.evaluation import evaluate_features
    from reidcore.evaluation.memory import budget_bytes

    results = {}
    if options.mode in ("stream", "compare"):
        start = time.perf_counter()
        results["stream"] = evaluate_features(
            qf, gf, *labels, rerank=True, memory_bytes=budget_bytes(options.memory_gb))
        print(f"streamed re-ranking + ranking: {time.perf_counter() - start:.1f} s; "
              f"peak RSS so far {peak_gb():.2f} GB")
    if options.mode in ("dense", "compare"):
        start = time.perf_counter()
        results["dense"], _ = dense(qf, gf, labels)
        print(f"dense re-ranking + ranking: {time.perf_counter() - start:.1f} s; "
              f"peak RSS so far {peak_gb():.2f} GB")
    for name, result in results.items():
        print(f"  {name}: mAP {result.mAP:.6f} rank-1 {result.cmc[0]:.6f} "
              f"mINP {result.mINP:.6f}")
    if options.mode == "compare":
        a, b = results["stream"], results["dense"]
        same_first = int((a.first_match_rank == b.first_match_rank).sum())
        print(f"  per-query first-match ranks equal for {same_first} of {a.num_queries} "
              f"queries; max |AP gap| {np.nanmax(np.abs(a.ap - b.ap)):.2e}; "
              f"|mAP gap| {abs(a.mAP - b.mAP):.2e}")
    print(json.dumps({"n": options.n, "mode": options.mode, "peak_rss_gb": peak_gb()}))


if __name__ == "__main__":
    main()

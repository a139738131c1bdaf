"""k-reciprocal re-ranking at Market-1501 scale (N = 3,368 + 15,913 = 19,281).

Prints the time and the peak memory beyond the inputs of ``k_reciprocal_rerank`` (k1=20,
k2=6, lambda=0.3), the mAP before and after, and, on a subset small enough for dense
N x N references, the largest gap to the published algorithm in float64 and the gap of
the common float16-intermediate implementation to the same float64 reference, with the
reference timings (the full-scale float16 reference takes minutes and ~7 GB: pass
``--full-reference`` to run it).

    OMP_NUM_THREADS=2 NUMBA_NUM_THREADS=2 python benchmarks/eval_rerank.py
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from eval_common import PeakSampler, market_problem  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", default="400x1600", help="QxG of the reference check")
    parser.add_argument("--full-reference", action="store_true")
    options = parser.parse_args()

    from reidcore.evaluation import k_reciprocal_rerank, pairwise_distance, rank_metrics
    from reidcore.evaluation.reference import reference_rerank

    start = time.perf_counter()
    tiny = np.random.default_rng(0).random((3, 5)).astype(np.float32)
    k_reciprocal_rerank(tiny, tiny[:, :3] + tiny[:, :3].T, np.abs(
        tiny.T[:, :1] - tiny[:1]) + 1e-3)
    print(f"first call (compile or cache load): {time.perf_counter() - start:.1f} s")

    logging.getLogger("reid.evaluation").setLevel(logging.ERROR)  # subsets skip queries
    qg, q_pids, g_pids, q_cams, g_cams, qf, gf = market_problem(noise=1.3)
    qq = pairwise_distance(qf, qf)
    gg = pairwise_distance(gf, gf)
    inputs = (qg.nbytes + qq.nbytes + gg.nbytes) / 2**20
    print(f"inputs: q_g {qg.shape}, q_q {qq.shape}, g_g {gg.shape} float32 = "
          f"{inputs:.0f} MB")
    with PeakSampler() as peak:
        start, cpu = time.perf_counter(), time.process_time()
        reranked = k_reciprocal_rerank(qg, qq, gg, k1=20, k2=6, lambda_value=0.3)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"k_reciprocal_rerank: {elapsed:.1f} s wall ({cpu:.1f} CPU-s over all threads); "
          f"peak memory beyond the inputs "
          f"{peak.extra:.0f} MB (of which the Q x G float32 result "
          f"{reranked.nbytes / 2**20:.0f} MB)")
    labels = (q_pids, g_pids, q_cams, g_cams)
    before, after = rank_metrics(qg, *labels), rank_metrics(reranked, *labels)
    print(f"  mAP {before.mAP:.4f} -> {after.mAP:.4f}; rank-1 {before.cmc[0]:.4f} -> "
          f"{after.cmc[0]:.4f}")

    nq, ng = (int(x) for x in options.subset.split("x"))
    sub = (qg[:nq, :ng], qq[:nq, :nq], gg[:ng, :ng])
    start = time.perf_counter()
    ours = k_reciprocal_rerank(*sub)
    ours_time = time.perf_counter() - start
    start = time.perf_counter()
    exact = reference_rerank(*sub)
    exact_time = time.perf_counter() - start
    start = time.perf_counter()
    common = reference_rerank(*sub, dtype=np.float16, dist_dtype=np.float32,
                              sort_kind="quicksort")
    common_time = time.perf_counter() - start
    gap = np.abs(ours - exact)
    common_gap = np.abs(common.astype(np.float64) - exact)
    sub_labels = (q_pids[:nq], g_pids[:ng], q_cams[:nq], g_cams[:ng])
    print(f"subset {nq}x{ng}: ours {ours_time:.2f} s, dense float64 reference "
          f"{exact_time:.1f} s, float16-intermediate (published) {common_time:.1f} s")
    print(f"  max |ours - float64 reference| = {gap.max():.2e}")
    print(f"  float16-intermediate vs float64: max {common_gap.max():.2e}, mean "
          f"{common_gap.mean():.2e}; mAP float64 "
          f"{rank_metrics(exact, *sub_labels).mAP:.5f} vs float16 "
          f"{rank_metrics(common, *sub_labels).mAP:.5f}")
    if options.full_reference:
        with PeakSampler() as ref_peak:
            start = time.perf_counter()
            full = reference_rerank(qg, qq, gg, dtype=np.float16, dist_dtype=np.float32,
                                    sort_kind="quicksort")
            full_time = time.perf_counter() - start
        print(f"full-scale float16 reference: {full_time:.1f} s, peak beyond inputs "
              f"{ref_peak.extra:.0f} MB; max gap to ours "
              f"{np.abs(full.astype(np.float64) - reranked).max():.2e}")


if __name__ == "__main__":
    main()

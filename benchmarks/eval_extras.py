"""What TPR@FPR and the bootstrap intervals add to an MSMT17-scale evaluation.

11,659 queries x 82,161 gallery images of 2,048-d random features with identity structure
(as ``eval_msmt.py``), Euclidean distance, market protocol. Runs the streamed evaluation
without the extras (``verification=False, bootstrap=0``) and with them (the defaults:
TPR@FPR = 1e-4, 1e-3, 1e-2 from the same pass; 1,000 bootstrap resamples over queries),
alternating ``--repeats`` times, and times the extras' own work inside the full run (the
negatives' selection and positives' lists per chunk, and the bootstrap) so that the
figure does not rest on the difference of two noisy wall times. Writes a JSON file.

    OMP_NUM_THREADS=2 NUMBA_NUM_THREADS=2 python benchmarks/eval_extras.py \
        --out benchmarks/results/eval_extras.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from eval_common import id_centres, id_features, peak_rss_mb  # noqa: E402
from eval_msmt import msmt_labels  # noqa: E402


class Timer:
    """Wraps a function and adds its wall time to ``seconds``."""

    def __init__(self, owner, name: str):
        self.owner, self.name = owner, name
        self.original = getattr(owner, name)
        self.seconds = 0.0

    def __enter__(self):
        original = self.original

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(self.owner, self.name, timed)
        return self

    def __exit__(self, *exc):
        setattr(self.owner, self.name, self.original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--noise", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--queries", type=int, default=11659)
    parser.add_argument("--gallery", type=int, default=82161)
    parser.add_argument("--out", type=Path)
    options = parser.parse_args()

    import torch

    import reidcore.evaluation.evaluator as evaluator
    from reidcore.evaluation.ranking import warm_up
    from reidcore.evaluation.verification import VerificationPass

    warm_up()
    rng = np.random.default_rng(0)
    q_pids, g_pids, q_cams, g_cams = msmt_labels(
        rng, options.queries, options.gallery, num_ids=min(3060, options.queries))
    scale = 4 / np.sqrt(options.dim)
    centres = id_centres(rng, int(q_pids.max()), options.dim) * scale
    qf = torch.from_numpy(id_features(rng, q_pids, centres, options.noise * scale))
    gf = torch.from_numpy(id_features(rng, g_pids, centres, options.noise * scale))
    args = (qf, gf, q_pids, g_pids, q_cams, g_cams)
    print(f"{len(q_pids):,} queries x {len(g_pids):,} gallery, {options.dim}-d; torch "
          f"threads {torch.get_num_threads()}", flush=True)

    plain, full, extras = [], [], []
    result = None
    for repeat in range(options.repeats):
        start = time.perf_counter()
        evaluator.evaluate_features(*args, verification=False, bootstrap=0)
        plain.append(time.perf_counter() - start)
        with Timer(VerificationPass, "add") as add, \
                Timer(evaluator, "shard_positives") as positives, \
                Timer(VerificationPass, "result") as final, \
                Timer(evaluator, "with_intervals") as boot:
            start = time.perf_counter()
            result = evaluator.evaluate_features(*args)
            full.append(time.perf_counter() - start)
        extras.append({"negatives": add.seconds, "positives": positives.seconds,
                       "tpr": final.seconds, "bootstrap": boot.seconds})
        print(f"repeat {repeat}: plain {plain[-1]:.1f} s, with extras {full[-1]:.1f} s; "
              + ", ".join(f"{k} {v:.2f} s" for k, v in extras[-1].items()), flush=True)
    assert result is not None
    inside = [sum(e.values()) for e in extras]
    report = {
        "queries": len(q_pids), "gallery": len(g_pids), "dim": options.dim,
        "torch_threads": torch.get_num_threads(),
        "plain_seconds": plain, "with_extras_seconds": full, "extras_seconds": extras,
        "extras_share_of_plain": [x / p for x, p in zip(inside, plain, strict=True)],
        "wall_difference_share": [(f - p) / p for f, p in zip(full, plain, strict=True)],
        "peak_rss_gb": peak_rss_mb() / 1024,
        "metrics": result.to_dict(),
    }
    print(json.dumps({k: v for k, v in report.items() if k != "metrics"}, indent=1))
    print(json.dumps(report["metrics"]["tpr_at_fpr"]),
          json.dumps(report["metrics"]["confidence_intervals"]))
    if options.out:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

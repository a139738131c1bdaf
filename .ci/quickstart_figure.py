"""Fail when the quickstart's result differs from the figure README.md states.

Usage: python .ci/quickstart_figure.py RUN_DIR  (after ``reid run quickstart --out RUN_DIR``
at OMP_NUM_THREADS=2, in an environment installed with constraints.txt). The README's
sentence "ended at mAP X / rank-1 Y" is compared with summary.json at the README's
precision.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = re.compile(r"ended at mAP (\d+\.\d+) / rank-1 (\d+\.\d+)")


def main(run_dir: Path) -> int:
    found = SENTENCE.search(" ".join((ROOT / "README.md").read_text().split()))
    if found is None:
        print("README.md states no 'ended at mAP X / rank-1 Y' for the quickstart")
        return 1
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = next(iter(summary["metrics"].values()))
    got = {"mAP": 100 * metrics["mAP"], "rank-1": 100 * metrics["rank1"]}
    stated = {"mAP": found.group(1), "rank-1": found.group(2)}
    wrong = []
    for key, text in stated.items():
        decimals = len(text.split(".")[1])
        if f"{got[key]:.{decimals}f}" != text:
            wrong.append(f"{key} {got[key]:.{decimals}f} (README: {text})")
    if wrong:
        print(f"the quickstart ended at {', '.join(wrong)}: update README.md's figures, or "
              f"find what changed (library versions: constraints.txt; threads: "
              f"OMP_NUM_THREADS=2)")
        return 1
    print(f"quickstart figures match README.md: mAP {stated['mAP']}, rank-1 {stated['rank-1']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

"""Synthetic generator throughput: images per second per core (render + JPEG + write).

    python benchmarks/data_synth.py [--size 128x64] [--style synthetic] [--ids 40]

Runs in one process and divides by that process's CPU time, so the figure is per core
even on a busy machine; the wall-clock rate is printed too. The target is >= 200 images/s
per core at 128x64.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from reidcore.data.synth import SynthParams, parse_size, plan, write_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128x64")
    parser.add_argument("--style", default="synthetic", choices=["synthetic", "real"])
    parser.add_argument("--ids", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    height, width = parse_size(args.size)
    params = SynthParams(ids=args.ids, test_ids=args.ids, height=height, width=width,
                         style=args.style)
    images = len(plan(params))
    best = 0.0
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            cpu, wall = time.process_time(), time.perf_counter()
            write_dataset(params, f"{tmp}/out", workers=1)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        best = max(best, images / cpu)
        print(f"{args.style} {args.size}: {images} images (+{2 * args.ids} textures) in "
              f"{cpu:.2f} s CPU / {wall:.2f} s wall: {images / cpu:.0f} images/s per core, "
              f"{images / wall:.0f} images/s wall")
    print(f"best: {best:.0f} images/s per core")


if __name__ == "__main__":
    main()

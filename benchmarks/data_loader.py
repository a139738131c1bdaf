"""Training-loader throughput: images per second decoded and augmented.

    python benchmarks/data_loader.py [--size 256x128] [--workers 2] [--batches 40]

Uses the synthetic data rendered at the loader size (generated once into the cache) and
the default training transforms (flip, pad-and-crop, random erasing, ImageNet
normalisation) with P x K sampling.
"""

from __future__ import annotations

import argparse
import time

from reidcore.data import LoaderConfig, build_train_loader
from reidcore.data.datasets.synthetic import SyntheticConfig, SyntheticDataset
from reidcore.data.synth import parse_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256x128")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    height, width = parse_size(args.size)
    dataset = SyntheticDataset(SyntheticConfig(size=args.size))
    config = LoaderConfig(height=height, width=width, workers=args.workers, identities=8,
                          instances=4)
    loader = build_train_loader([dataset], [], config, seed=0)
    images, start, epoch = 0, None, 0
    while images < args.batches * 32:
        loader.set_epoch(epoch)
        for batch in loader:
            if start is None:  # skip worker start-up and the first batch
                start = time.perf_counter()
                continue
            images += batch["images"].shape[0]
            if images >= args.batches * 32:
                break
        epoch += 1
    seconds = time.perf_counter() - start
    print(f"{images} images at {args.size} with {args.workers} workers in {seconds:.2f} s: "
          f"{images / seconds:.0f} images/s")
    # per-core cost of decoding + augmenting one image, independent of machine load
    # (one thread, as in a DataLoader worker)
    import torch

    torch.set_num_threads(1)
    dataset = loader.source.dataset
    cpu = time.process_time()
    n = min(len(dataset), 400)
    for i in range(n):
        dataset[i]
    cpu = time.process_time() - cpu
    print(f"decode + augment in one process: {n / cpu:.0f} images/s per core (CPU time)")


if __name__ == "__main__":
    main()

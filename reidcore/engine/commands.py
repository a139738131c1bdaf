"""The ``reid extract`` command (argument parsing only: torch loads when it runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def command_extract(args: argparse.Namespace, plugins: Any) -> int:
    import numpy as np

    from reidcore.data.datasets.base import find_images
    from reidcore.engine.extract import FeatureExtractor

    images = find_images(args.images, "--images")
    extractor = FeatureExtractor(args.run, checkpoint=args.checkpoint, device=args.device,
                                 plugins=plugins, batch_size=args.batch_size)
    features = extractor(images)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from reidcore.fileio import atomic_open

    with atomic_open(args.out, "wb") as handle:
        np.savez(handle, features=features.numpy(),
                 paths=np.array([str(p) for p in images]))
    source = extractor.checkpoint or "untrained weights"
    print(f"wrote {len(images)} x {features.shape[1]} features to {args.out} (from {source})")
    return 0


def add_extract_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract", help="embed a folder of images with a trained run (or a recipe)")
    parser.add_argument("run", metavar="RECIPE_OR_RUN",
                        help="a run directory (uses checkpoints/best.pt, else the latest) or a "
                             "recipe file / packaged recipe name (untrained weights)")
    parser.add_argument("--images", type=Path, required=True, help="folder of images (recursive)")
    parser.add_argument("--out", type=Path, required=True,
                        help="output .npz with 'features' (N x D) and 'paths'")
    parser.add_argument("--checkpoint", type=Path, help="a specific checkpoint file")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.set_defaults(func=command_extract)

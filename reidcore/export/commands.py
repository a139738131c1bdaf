"""``reid export`` (parser here; torch and onnx load only when it runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_export_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``reid export``."""
    parser = subparsers.add_parser(
        "export", help="write a run's inference embedding as ONNX (with a parity check)",
        description="Export the run's embedding (flip averaging and l2 normalisation as its "
                    "[evaluate] section applies them) to ONNX with a dynamic batch; "
                    "onnxruntime's embeddings of the run's test images are compared with "
                    "PyTorch's before the file is written. Needs reidcore[export].")
    parser.add_argument("run", metavar="RUN_DIR", help="a run directory (best, else latest, "
                                                       "checkpoint)")
    parser.add_argument("--onnx", type=Path, required=True, metavar="FILE",
                        help="the .onnx file to write")
    parser.add_argument("--checkpoint", type=Path, help="this checkpoint file instead")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                        help="average with the mirrored image (default: as the run evaluates)")
    parser.add_argument("--normalise", action=argparse.BooleanOptionalAction, default=None,
                        help="l2-normalise the embedding (default: as the run evaluates)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (17)")
    parser.add_argument("--parity-images", type=int, default=32, metavar="N",
                        help="test-set images for the parity check (32)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override the run's recipe")
    parser.set_defaults(func=command_export)


def command_export(args: argparse.Namespace, plugins: Any) -> int:
    from reidcore.errors import ReidError
    from reidcore.export.onnx_export import OPSET
    from reidcore.export.run_export import export_onnx

    if args.onnx.suffix != ".onnx":
        raise ReidError(f"--onnx {args.onnx}: expected a file name ending in .onnx")
    if args.parity_images < 2:
        raise ReidError(f"--parity-images must be at least 2, got {args.parity_images}")
    result = export_onnx(args.run, args.onnx, plugins=plugins, flip=args.flip,
                         normalise=args.normalise, checkpoint=args.checkpoint,
                         overrides=args.overrides, opset=args.opset or OPSET,
                         parity_images=args.parity_images)
    source = result.checkpoint or "untrained weights"
    print(f"wrote {result.path} (opset {result.opset}, dynamic batch, flip "
          f"{'on' if result.flip else 'off'}, l2 normalisation "
          f"{'on' if result.normalise else 'off'}; from {source})")
    print(result.parity.describe())
    print(f"evaluate it: reid eval --run {result.path}")
    return 0

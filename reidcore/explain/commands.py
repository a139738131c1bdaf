"""``reid explain`` (parser here; torch loads only when it runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_explain_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``reid explain``."""
    parser = subparsers.add_parser(
        "explain", help="activation maps and similarity Grad-CAM of query images and their "
                        "top gallery matches",
        description="For each query image: its top-k gallery matches under the run's "
                    "embedding (cosine), the activation maps (L2 norm over channels of the "
                    "last feature map) and the Grad-CAM of the query-match similarity, as "
                    "one labelled PNG per query in --out.")
    parser.add_argument("run", metavar="RUN_DIR", help="a run directory")
    parser.add_argument("--images", type=Path, nargs="+", required=True,
                        help="query images (files or folders)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--gallery", type=Path,
                        help="gallery folder (default: the gallery of the run's first test set)")
    parser.add_argument("--top-k", type=int, default=5, help="matches shown (5)")
    parser.add_argument("--layer", metavar="MODULE",
                        help="the module whose feature map is used, e.g. "
                             "network.backbone.trunk.layer3 (default: the last spatial map)")
    parser.add_argument("--checkpoint", type=Path, help="this checkpoint file instead")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override the run's recipe")
    parser.set_defaults(func=command_explain)


def command_explain(args: argparse.Namespace, plugins: Any) -> int:
    from reidcore.explain.run_explain import explain_run

    written = explain_run(args.run, args.images, args.out, plugins=plugins, top_k=args.top_k,
                          gallery=args.gallery, layer=args.layer, checkpoint=args.checkpoint,
                          overrides=args.overrides)
    for path in written:
        print(f"wrote {path}")
    return 0

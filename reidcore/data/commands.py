"""``reid data synth`` and ``reid data check``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from reidcore.errors import ReidError


def add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``reid data {synth,check}``."""
    data = subparsers.add_parser("data", help="generate synthetic data, check local datasets")
    commands = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    commands.required = True

    synth = commands.add_parser(
        "synth", help="render synthetic pedestrians in the Market-1501 layout",
        description="Render procedural pedestrian images (with per-identity texture maps) "
                    "into DIR in the Market-1501 layout. The same options give "
                    "byte-identical files.")
    synth.add_argument("--out", required=True, help="output folder (new or empty)")
    synth.add_argument("--ids", type=int, default=40, help="training identities (40)")
    synth.add_argument("--test-ids", type=int, default=40, help="test identities (40)")
    synth.add_argument("--distractors", type=int, default=10,
                       help="gallery-only identities written with pid 0 (10)")
    synth.add_argument("--cameras", type=int, default=4, help="cameras (4)")
    synth.add_argument("--images-per-camera", type=int, default=4,
                       help="images per identity and camera (4)")
    synth.add_argument("--style", default="synthetic", choices=["synthetic", "real"],
                       help="synthetic: flat game-like; real: clutter, noise, blur, JPEG")
    synth.add_argument("--size", default="128x64", help="HEIGHTxWIDTH (128x64)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=int, default=1, help="rendering processes (1)")
    synth.set_defaults(func=command_synth)

    check = commands.add_parser(
        "check", help="verify a local dataset copy against its declared statistics",
        description="Load dataset NAME from --root, compare its counts with the published "
                    "ones and decode every image.")
    check.add_argument("name", help="dataset component name, e.g. market1501")
    check.add_argument("--root", help="the dataset's root folder (its `root` option)")
    check.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="another dataset option (value in TOML), e.g. --option "
                            "labeled=false; repeatable")
    check.add_argument("--no-images", action="store_true", help="only compare the counts")
    check.add_argument("--quick", action="store_true",
                       help="check image headers only instead of decoding every image")
    check.set_defaults(func=command_check)


def command_synth(args: argparse.Namespace, plugins: Any = None) -> int:
    from reidcore.data.synth import SynthParams, parse_size, write_dataset

    try:
        height, width = parse_size(args.size)
    except ValueError as exc:
        raise ReidError(f"--size: {exc}") from None
    params = SynthParams(ids=args.ids, test_ids=args.test_ids, distractors=args.distractors,
                         cameras=args.cameras, images_per_camera=args.images_per_camera,
                         style=args.style, height=height, width=width, seed=args.seed)
    start = time.perf_counter()
    out = write_dataset(params, args.out, workers=max(1, args.workers))
    seconds = time.perf_counter() - start
    import json

    counts = json.loads((out / "manifest.json").read_text())["images"]
    total = sum(counts.values())
    print(f"wrote {total} images ({', '.join(f'{v} {k}' for k, v in counts.items())}) "
          f"and {params.ids + params.test_ids} textures to {out} in {seconds:.1f} s")
    return 0


def _parse_option(text: str) -> tuple[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ReidError(f"--option {text!r}: expected KEY=VALUE")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare word is a string
    return key.strip(), parsed


def command_check(args: argparse.Namespace, plugins: Any) -> int:
    from reidcore.converter import structure
    from reidcore.data.check import check_dataset
    from reidcore.registry import Kind

    spec = plugins.registry.get(Kind.DATASET, args.name)  # unknown: error with did-you-mean
    options = dict(_parse_option(o) for o in args.option)
    if args.root is not None:
        options["root"] = os.path.expanduser(args.root)
    config, problems = structure(options, spec.config, f"$.data.{args.name}")
    if problems:
        raise ReidError("invalid dataset options:\n" + "\n".join(f"  {p}" for p in problems))
    dataset = spec.create(config)

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty() and (done % 500 == 0 or done == total):
            print(f"\rdecoding images {done}/{total}", end="\n" if done == total else "",
                  file=sys.stderr)

    report = check_dataset(args.name, dataset, images=not args.no_images,
                           decode=not args.quick, progress=progress)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


"""``reid san-textures``: pseudo ground-truth textures of a re-ID dataset's training images.

    reid san-textures runs/san-pg-pit --dataset cuhk03 --root data --out textures/cuhk03
    reid san-textures runs/<run> --dataset synthetic --option size=64x32 --out tex/

The trained SAN-PG is rebuilt from its run's ``recipe.toml`` with its weights
(``reidcore.api.load_run``); every training image of the dataset is resized to the SAN-PG
recipe's input size, normalised as it was trained, decoded and written as a PNG (at the
decoder's texture size) under ``--out`` with the image's relative path, beside
``manifest.json`` (the SAN-PG run, its checkpoint's SHA-256, the data, the sizes). Run
again after an interruption: textures already written are verified against the
manifest's SHA-256 and kept; damaged ones (truncated, changed) and ones written by another
SAN-PG run are rewritten and counted. Recipes read the folder
with ``method.textures = "folder"`` and ``method.texture_root``. Argument parsing imports
no torch; the command does.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reidcore.api import ReidError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "san-textures", help="write SAN-PG pseudo textures for a dataset's training images",
        description="Run a trained SAN-PG (a san_pg run) over the training images of a re-ID "
                    "dataset and write one texture per image, resumably, with a manifest.")
    parser.add_argument("run", type=Path, help="a san_pg run directory or one of its "
                                               "checkpoints (.pt)")
    parser.add_argument("--dataset", required=True, help="a registered dataset, e.g. "
                                                         "market1501, cuhk03, synthetic")
    parser.add_argument("--root", default=None, help="the dataset's root folder")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="another dataset option (repeatable), e.g. images=labeled")
    parser.add_argument("--out", type=Path, required=True, help="folder for the textures")
    parser.add_argument("--which", choices=("last", "best"), default="last")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.set_defaults(func=command_textures)


def parse_value(text: str) -> Any:
    """A dataset option's value: TOML scalar syntax when it parses, else the string."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def dataset_options(config: Any) -> dict[str, str]:
    """A dataset config's options that differ from their defaults, as ``--option`` texts:
    the manifest's record of the data (the same whether the textures came from this
    command or from the san method's recipe), from which the repair command is built."""
    import attrs

    from reid_plugin_san.textures import option_text

    options = {}
    for field in attrs.fields(type(config)):
        value = getattr(config, field.name)
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if value != default:
            options[field.name] = option_text(value)
    return options


def dataset_records(registry: Any, name: str, root: str | None,
                    options: list[str]) -> tuple[list[str], dict[str, str]]:
    """The training image paths of dataset ``name`` built with ``root`` / ``options``, and
    the dataset's non-default options (:func:`dataset_options`)."""
    from reidcore.api import Kind

    spec = registry.get(Kind.DATASET, name)  # unknown: a ReidError with did-you-mean
    values: dict[str, Any] = {}
    for option in options:
        key, sep, text = option.partition("=")
        if not sep or not key.strip():
            raise ReidError(f"--option must look like KEY=VALUE, got {option!r}")
        values[key.strip()] = parse_value(text.strip())
    if root is not None:
        values["root"] = root
    try:
        config = spec.config(**values)
    except (TypeError, ValueError) as exc:
        raise ReidError(f"dataset '{name}': invalid options {values}: {exc}") from None
    paths = [record.path for record in spec.create(config).load().train]
    if not paths:
        raise ReidError(f"dataset '{name}' has no training images")
    return paths, dataset_options(config)


def command_textures(args: argparse.Namespace, plugins: Any) -> int:
    from reidcore.api import load_run

    from reid_plugin_san.textures import san_pg_decoder, write_textures

    if args.batch_size < 1:
        raise ReidError(f"--batch-size must be >= 1, got {args.batch_size}")
    loaded = load_run(args.run, plugins.registry, modules=["backbone", "decoder"],
                      which=args.which, device=args.device)
    decode, sizes = san_pg_decoder(loaded)
    images, options = dataset_records(plugins.registry, args.dataset, args.root, args.option)
    identity = {**sizes.pop("identity"), "dataset": args.dataset,
                "dataset_options": options}
    manifest = write_textures(decode, images, args.out, identity=identity,
                              batch_size=args.batch_size, device=args.device, **sizes)
    print(f"{manifest['written']} texture(s) written{repaired(manifest)}, "
          f"{manifest['skipped']} already there (verified), in {args.out} "
          f"({manifest['texture_size'][0]}x{manifest['texture_size'][1]}, "
          f"SAN-PG {manifest['san_pg_run']})")
    return 0


def repaired(manifest: dict[str, Any]) -> str:
    """`` (2 damaged, 1 from another SAN-PG run, rewritten)`` or nothing."""
    parts = []
    if manifest.get("damaged"):
        parts.append(f"{manifest['damaged']} damaged")
    if manifest.get("foreign"):
        parts.append(f"{manifest['foreign']} from another SAN-PG run")
    return f" ({', '.join(parts)}, rewritten)" if parts else ""

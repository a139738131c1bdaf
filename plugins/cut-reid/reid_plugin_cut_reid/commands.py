"""Commands: translate a folder of images with a trained cut_reid generator, and the FID
between two folders of images.

    reid cut-reid-translate runs/<run> photos/ translated/
    reid cut-reid-translate runs/<run>/checkpoints/best.pt photos/ translated/
    reid cut-reid-fid real/ translated/ --weights inception_v3_google-0cc3c7bd.pth

The translator is rebuilt from the run's own ``recipe.toml`` and its weights loaded by
``reidcore.api.load_run`` (a run directory: its last checkpoint, or ``--which best``; or a
checkpoint file); images are resized to the recipe's ``loader.height`` x ``loader.width``
(or ``--size HxW``), translated, and written under the output folder with the same
relative paths (PNG). The FID is the core's ``fid`` evaluator (``reidcore.api.FID``).
Argument parsing imports no torch; the commands do.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reidcore.api import ReidError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cut-reid-translate", help="translate a folder of images with a cut_reid generator",
        description="Translate a folder of images with a trained cut_reid generator; the "
                    "generator's options come from the run's recipe.toml.")
    parser.add_argument("checkpoint", type=Path,
                        help="a cut_reid run directory or one of its checkpoints (.pt)")
    parser.add_argument("input", type=Path, help="folder of images (searched recursively)")
    parser.add_argument("output", type=Path, help="folder for the translated PNG images")
    parser.add_argument("--which", choices=("last", "best"), default="last",
                        help="for a run directory: its last or its best checkpoint")
    parser.add_argument("--size", default=None, help="HxW, default: the recipe's loader size")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.set_defaults(func=command_translate)

    fid = subparsers.add_parser(
        "cut-reid-fid", help="Frechet Inception Distance between two folders of images",
        description="FID between two folders of images (searched recursively), each resized "
                    "to --size first (the authors' protocol: 128x64), with Inception-v3 "
                    "weights from a local file.")
    fid.add_argument("first", type=Path)
    fid.add_argument("second", type=Path)
    fid.add_argument("--weights", required=True,
                     help="local torchvision inception_v3 state_dict file")
    fid.add_argument("--size", default="128x64", help="HxW images are resized to first")
    fid.add_argument("--device", default="cpu")
    fid.set_defaults(func=command_fid)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ReidError(f"--size must look like 256x128, got {text!r}") from None
    if height < 16 or width < 16:
        raise ReidError(f"--size must be at least 16x16, got {text!r}")
    return height, width


def _load_translator(checkpoint: Path, plugins: Any, which: str = "last") -> tuple[Any, Any]:
    """The trained translator (eval mode, on the CPU) and the run's recipe."""
    from reidcore.api import load_run

    loaded = load_run(checkpoint, plugins.registry, modules=["translator"], which=which)
    if loaded.recipe.method.name != "cut_reid":
        raise ReidError(f"{loaded.run_dir} is a '{loaded.recipe.method.name}' run; "
                        f"cut-reid-translate needs a cut_reid run")
    return loaded["translator"], loaded.recipe


def _read_images(paths: list[Path], size: tuple[int, int]) -> Any:
    """A B x 3 x H x W float tensor in [0, 1]."""
    import torch
    from PIL import Image
    from torchvision.transforms import functional as TF

    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image = image.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
        except OSError as exc:
            raise ReidError(f"cannot read image {path}: {exc}") from None
        images.append(TF.to_tensor(image))
    return torch.stack(images)


def translate_folder(translator: Any, source: Path, target: Path, size: tuple[int, int],
                     device: str = "cpu", batch_size: int = 16) -> list[Path]:
    """Translate every image under ``source`` into ``target`` (same relative paths, .png)."""
    import torch
    from reidcore.api import find_images
    from torchvision.utils import save_image

    paths = find_images(source, "input folder")
    translator = translator.to(device)
    written = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        images = _read_images(chunk, size) * 2 - 1
        with torch.no_grad():
            out = translator(images.to(device)).float().cpu() * 0.5 + 0.5
        for path, image in zip(chunk, out, strict=True):
            destination = (target / path.relative_to(source)).with_suffix(".png")
            destination.parent.mkdir(parents=True, exist_ok=True)
            save_image(image.clamp(0, 1), destination)
            written.append(destination)
    return written


def command_translate(args: argparse.Namespace, plugins: Any) -> int:
    translator, recipe = _load_translator(args.checkpoint, plugins, args.which)
    size = _parse_size(args.size) if args.size else (recipe.loader.height, recipe.loader.width)
    written = translate_folder(translator, args.input, args.output, size, args.device,
                               args.batch_size)
    print(f"translated {len(written)} image(s) into {args.output}")
    return 0


def command_fid(args: argparse.Namespace, plugins: Any) -> int:
    from reidcore.api import find_images

    size = _parse_size(args.size)
    spec = plugins.registry.get("evaluator", "fid")
    fid = spec.create(spec.config(weights=args.weights))  # reidcore.api.FID
    fid.network  # noqa: B018 - fail on a bad weights file before reading any image
    first = _read_images(find_images(args.first, "input folder"), size)
    second = _read_images(find_images(args.second, "input folder"), size)
    value = fid.image_fid(first, second, args.device)
    print(f"FID {value:.4f}  ({len(first)} vs {len(second)} images at {args.size})")
    return 0

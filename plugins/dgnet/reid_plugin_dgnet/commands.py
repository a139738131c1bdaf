"""Commands: the appearance x structure swap grid of any images, and the FID of generated
cross-identity images against the real ones.

    reid dgnet-swap runs/<run> --images A.jpg B.jpg C.jpg --out grid.png
    reid dgnet-fid runs/<run> real_images/ --weights inception_v3_google-0cc3c7bd.pth

The networks are rebuilt from the run's own ``recipe.toml`` and loaded by
``reidcore.api.load_run`` (a run directory: its last checkpoint, or ``--which best``; or a
checkpoint file). Images are resized to the recipe's ``loader.height`` x ``loader.width``
(bicubic, as the official test transform) and normalised as in training. The FID is the
core's ``fid`` evaluator (``reidcore.api.FID``). Argument parsing imports no torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reidcore.api import ReidError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    swap = subparsers.add_parser(
        "dgnet-swap", help="render DG-Net's appearance x structure swap grid for images",
        description="Cell (i, j) of the grid wears image i's appearance on image j's "
                    "structure (pose, background); the first row and column show the inputs.")
    swap.add_argument("run", type=Path, help="a dgnet run directory or one of its checkpoints")
    swap.add_argument("--images", type=Path, nargs="+", required=True,
                      help="two or more images (files, or folders searched recursively)")
    swap.add_argument("--out", type=Path, required=True, help="the PNG to write")
    swap.add_argument("--which", choices=("last", "best"), default="last")
    swap.add_argument("--limit", type=int, default=12, help="at most this many images")
    swap.add_argument("--device", default="cpu")
    swap.set_defaults(func=command_swap)

    fid = subparsers.add_parser(
        "dgnet-fid", help="FID of DG-Net's cross-identity images against real images",
        description="Generates x_ij = G(s_j, a_i) for random pairs of the given real images "
                    "(i != j) and reports the FID between those and the real images, with "
                    "Inception-v3 weights from a local file.")
    fid.add_argument("run", type=Path)
    fid.add_argument("images", type=Path, help="folder of real images (searched recursively)")
    fid.add_argument("--weights", required=True,
                     help="local torchvision inception_v3 state_dict file")
    fid.add_argument("--count", type=int, default=1000, help="images used (at most)")
    fid.add_argument("--which", choices=("last", "best"), default="last")
    fid.add_argument("--device", default="cpu")
    fid.add_argument("--seed", type=int, default=0)
    fid.set_defaults(func=command_fid)


def load_generator(run: Path, plugins: Any, which: str = "last", device: str = "cpu"
                   ) -> tuple[Any, Any, Any, Any]:
    """(ea, es, decoder, recipe) of a trained dgnet run, frozen, on ``device``."""
    from reidcore.api import load_run

    loaded = load_run(run, plugins.registry, device=device, which=which)
    if loaded.recipe.method.name != "dgnet":
        raise ReidError(f"{loaded.run_dir} is a '{loaded.recipe.method.name}' run; "
                        f"dgnet-swap and dgnet-fid need a run of a dgnet recipe")
    return loaded["ea"], loaded["es"], loaded["decoder"], loaded.recipe


def read_images(paths: list[Path], size: tuple[int, int]) -> Any:
    """B x 3 x H x W in [0, 1], resized bicubically."""
    import torch
    from PIL import Image
    from reidcore.api import open_image
    from torchvision.transforms import functional as TF

    images = [TF.to_tensor(open_image(str(p)).resize((size[1], size[0]), Image.BICUBIC))
              for p in paths]
    return torch.stack(images)


def _expand(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            from reidcore.api import find_images

            found.extend(find_images(path, "--images folder"))
        elif path.is_file():
            found.append(path)
        else:
            raise ReidError(f"--images: no file or folder {path}")
    return found


def command_swap(args: argparse.Namespace, plugins: Any) -> int:
    paths = _expand(args.images)[:max(args.limit, 2)]  # user errors first, before torch
    if len(paths) < 2:
        raise ReidError("dgnet-swap needs at least two images (--images A.jpg B.jpg ...)")
    import torch
    from reidcore.api import image_grid, save_png

    from reid_plugin_dgnet.swap import normalize_images, swap_rows

    ea, es, decoder, recipe = load_generator(args.run, plugins, args.which, args.device)
    size = (recipe.loader.height, recipe.loader.width)
    images = normalize_images(read_images(paths, size), recipe.loader.normalize)
    with torch.no_grad():
        rows = swap_rows(ea, es, decoder, images.to(args.device), recipe.loader.normalize)
    save_png(image_grid(rows, (0.0, 1.0), limit=len(paths) + 1), args.out)
    print(f"swap grid of {len(paths)} images ({len(paths)} x {len(paths)} generated) "
          f"written to {args.out}")
    return 0


def generate_cross(ea: Any, es: Any, decoder: Any, images: Any, normalize: str,
                   seed: int = 0, batch_size: int = 16) -> Any:
    """For each image i, ``G(s_j, a_i)`` with a random partner j != i: [0, 1] images."""
    import torch

    from reid_plugin_dgnet.networks import to_gray
    from reid_plugin_dgnet.swap import denormalize

    count = images.shape[0]
    generator = torch.Generator().manual_seed(seed)
    partner = (torch.arange(count) + torch.randint(1, count, (count,), generator=generator)
               ) % count
    out = []
    for module in (ea, es, decoder):
        module.eval()
    with torch.no_grad():
        for start in range(0, count, batch_size):
            idx = torch.arange(start, min(start + batch_size, count))
            codes = ea.encode(images[idx])
            structures = es(to_gray(images[partner[idx]]))
            out.append(denormalize(decoder(structures, codes), normalize).cpu())
    return torch.cat(out)


def command_fid(args: argparse.Namespace, plugins: Any) -> int:
    import random

    from reidcore.api import find_images

    from reid_plugin_dgnet.swap import normalize_images

    spec = plugins.registry.get("evaluator", "fid")
    fid = spec.create(spec.config(weights=args.weights))  # reidcore.api.FID
    fid.network  # noqa: B018 - fail on a bad weights file before generating anything
    paths = find_images(args.images, "real images folder")
    if len(paths) < 2:
        raise ReidError(f"dgnet-fid needs at least two images in {args.images}")
    paths = sorted(paths)
    random.Random(args.seed).shuffle(paths)
    paths = paths[:args.count]
    ea, es, decoder, recipe = load_generator(args.run, plugins, args.which, args.device)
    real = read_images(paths, (recipe.loader.height, recipe.loader.width))
    images = normalize_images(real, recipe.loader.normalize).to(args.device)
    fake = generate_cross(ea, es, decoder, images, recipe.loader.normalize, args.seed)
    value = fid.image_fid(real, fake, args.device)
    print(f"FID {value:.4f}  (generated vs real, {len(paths)} images each)")
    return 0

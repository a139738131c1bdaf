"""Image grids for methods that generate images: one picture, rows of named batches.

A GAN-style method shows its inputs, translations and reconstructions side by side. The
grid is built once here (torchvision's ``make_grid``) and written by the engine to
TensorBoard and as a PNG in the run directory (see ``MethodContext.log_images``), so no
method writes files or TensorBoard events of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from reidcore.fileio import atomic_open


def image_grid(rows: Mapping[str, torch.Tensor] | Sequence[torch.Tensor],
               value_range: tuple[float, float] = (-1.0, 1.0), limit: int = 8,
               padding: int = 2) -> np.ndarray:
    """An ``H x W x 3`` uint8 picture with one row per batch (``B x C x H x W``, C = 1 or
    3), at most ``limit`` images per row (the smallest batch sets the row length).
    ``value_range`` is the range of the pixel values (``(-1, 1)`` for tanh outputs,
    ``(0, 1)`` for images in [0, 1]). Rows of different image sizes are resized to the
    first row's size."""
    from torchvision.utils import make_grid

    batches = list(rows.values()) if isinstance(rows, Mapping) else list(rows)
    if not batches:
        raise ValueError("image_grid needs at least one row of images")
    for batch in batches:
        if batch.dim() != 4 or batch.shape[1] not in (1, 3):
            raise ValueError(f"image_grid rows must be B x (1 or 3) x H x W, got "
                             f"{tuple(batch.shape)}")
    count = min(limit, *(int(b.shape[0]) for b in batches))
    size = tuple(batches[0].shape[-2:])
    low, high = value_range
    prepared = []
    for batch in batches:
        images = batch[:count].detach().float().cpu()
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if tuple(images.shape[-2:]) != size:
            images = torch.nn.functional.interpolate(images, size=size, mode="bilinear",
                                                     align_corners=False)
        prepared.append(((images - low) / (high - low)).clamp(0, 1))
    grid = make_grid(torch.cat(prepared), nrow=count, padding=padding)
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def save_png(image: np.ndarray, path: Path) -> Path:
    """Write an ``H x W x 3`` uint8 picture atomically as a PNG."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        Image.fromarray(image).save(handle, format="PNG")
    return path

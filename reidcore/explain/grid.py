"""A labelled picture of tiles: a title, one row per kind of picture (row name at the left),
a caption above every tile and an optional coloured border (a correct or wrong match)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import torch

GREEN, RED, GREY = (40, 170, 60), (210, 40, 40), (160, 160, 160)
CAPTION_HEIGHT, LABEL_WIDTH, TITLE_HEIGHT, GAP, BORDER = 28, 96, 24, 6, 3


@attrs.frozen
class Tile:
    image: np.ndarray  # H x W x 3 uint8
    caption: str = ""
    border: tuple[int, int, int] | None = None


def jet(values: np.ndarray) -> np.ndarray:
    """The jet colour map: values in [0, 1] (any shape) -> uint8 RGB (shape + (3,))."""
    values = np.clip(values, 0.0, 1.0)[..., None]
    centres = np.array([0.75, 0.5, 0.25])  # red, green, blue peaks
    rgb = np.clip(1.5 - np.abs(4.0 * (values - centres)), 0.0, 1.0)
    return (rgb * 255).round().astype(np.uint8)


def overlay(image: np.ndarray, heat: torch.Tensor, alpha: float = 0.5) -> np.ndarray:
    """``image`` (H x W x 3 uint8) blended with ``heat`` (h x w in [0, 1]) upsampled to it."""
    height, width = image.shape[:2]
    upsampled = torch.nn.functional.interpolate(heat[None, None].float(), size=(height, width),
                                                mode="bilinear", align_corners=False)[0, 0]
    coloured = jet(upsampled.numpy()).astype(np.float32)
    return ((1 - alpha) * image.astype(np.float32) + alpha * coloured).round().astype(np.uint8)


def labelled_grid(rows: Sequence[tuple[str, Sequence[Tile]]], title: str = "") -> np.ndarray:
    """The picture as an H x W x 3 uint8 array; every tile has the first tile's size."""
    from PIL import Image, ImageDraw

    first = rows[0][1][0].image
    tile_h, tile_w = first.shape[:2]
    columns = max(len(tiles) for _, tiles in rows)
    cell_w, cell_h = tile_w + 2 * BORDER + GAP, tile_h + 2 * BORDER + CAPTION_HEIGHT + GAP
    canvas = Image.new("RGB", (LABEL_WIDTH + columns * cell_w + GAP,
                               TITLE_HEIGHT + len(rows) * cell_h + GAP), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((GAP, 6), title, fill="black")
    for row, (label, tiles) in enumerate(rows):
        top = TITLE_HEIGHT + row * cell_h
        draw.multiline_text((GAP, top + CAPTION_HEIGHT + tile_h // 2 - 6), label, fill="black")
        for column, tile in enumerate(tiles):
            left = LABEL_WIDTH + column * cell_w
            draw.multiline_text((left, top), tile.caption, fill="black", spacing=2)
            if tile.border is not None:
                draw.rectangle([left, top + CAPTION_HEIGHT, left + tile_w + 2 * BORDER - 1,
                                top + CAPTION_HEIGHT + tile_h + 2 * BORDER - 1],
                               fill=tile.border)
            canvas.paste(Image.fromarray(tile.image),
                         (left + BORDER, top + CAPTION_HEIGHT + BORDER))
    return np.asarray(canvas)

"""Random erasing on a batch of tensors, for the copies of the real images Ea classifies.

DG-Net erases only those copies (the generator reconstructs the clean images), so it is
applied in the method, not by the loader. As the official ``RandomErasing``: per image with
probability ``p``, a rectangle of area 2-40 % and aspect ratio uniform in [0.3, 1/0.3]
(100 attempts to fit), filled with 0 in the normalised space.
"""

from __future__ import annotations

import math
import random

import torch


def random_erasing(images: torch.Tensor, p: float, low: float = 0.02, high: float = 0.4,
                   aspect: float = 0.3, fill: float = 0.0,
                   rng: random.Random | None = None) -> torch.Tensor:
    """A copy of ``images`` (B x C x H x W) with rectangles erased."""
    rng = rng or random
    out = images.clone()
    height, width = images.shape[-2:]
    for i in range(images.shape[0]):
        if rng.uniform(0, 1) > p:
            continue
        for _ in range(100):
            area = height * width * rng.uniform(low, high)
            ratio = rng.uniform(aspect, 1 / aspect)
            h = int(round(math.sqrt(area * ratio)))
            w = int(round(math.sqrt(area / ratio)))
            if w < width and h < height:
                top, left = rng.randint(0, height - h), rng.randint(0, width - w)
                out[i, :, top:top + h, left:left + w] = fill
                break
    return out

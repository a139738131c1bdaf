"""Appearance x structure swap grids: the product DG-Net's generator is for.

Cell (i, j) of the grid is ``G(Es(gray(x_j)), Ea(x_i))``: image i's clothing on image j's
pose and background. The first row shows the structure images, the first column the
appearance images (the corner is blank); the diagonal reconstructs each image.
"""

from __future__ import annotations

import torch

NORMALIZATIONS = {"imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                  "tanh": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                  "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))}


def denormalize(images: torch.Tensor, normalize: str) -> torch.Tensor:
    """From the loader's normalised space back to [0, 1] (clamped)."""
    mean, std = (torch.tensor(v, device=images.device).view(1, 3, 1, 1)
                 for v in NORMALIZATIONS[normalize])
    return (images.float() * std + mean).clamp(0, 1)


def normalize_images(images: torch.Tensor, normalize: str) -> torch.Tensor:
    """From [0, 1] to the loader's normalised space."""
    mean, std = (torch.tensor(v, device=images.device).view(1, 3, 1, 1)
                 for v in NORMALIZATIONS[normalize])
    return (images - mean) / std


@torch.no_grad()
def swap_rows(ea: torch.nn.Module, es: torch.nn.Module, decoder: torch.nn.Module,
              images: torch.Tensor, normalize: str) -> list[torch.Tensor]:
    """The grid's rows as [0, 1] image batches of ``n + 1`` images each (``images``: n
    normalised images). The networks are used in eval mode and left as they were."""
    from reid_plugin_dgnet.networks import to_gray

    modes = [(m, m.training) for m in (ea, es, decoder)]
    for module, _ in modes:
        module.eval()
    try:
        codes = ea.encode(images)
        structures = es(to_gray(images))
        shown = denormalize(images, normalize)
        blank = torch.ones_like(shown[:1])
        rows = [torch.cat([blank, shown])]
        for i in range(images.shape[0]):
            code = codes[i:i + 1].expand(images.shape[0], -1)
            generated = denormalize(decoder(structures, code), normalize)
            rows.append(torch.cat([shown[i:i + 1], generated]))
        return rows
    finally:
        for module, mode in modes:
            module.train(mode)

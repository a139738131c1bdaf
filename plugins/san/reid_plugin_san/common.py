"""Pieces both methods share: the encoder/decoder pairing check, the epoch-wise step
schedule, the ``EstimatesTexture`` capability, logging image / target / decoded rows, and
side work that must not move the training's random stream."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from reidcore.api import ClockLR, MethodContext, ReidError
from torch import nn

from reid_plugin_san.networks import SADecoder, stage_channels, stage_maps


def check_pairing(decoder: nn.Module, trunk: nn.Module) -> SADecoder:
    """The decoder must be SA-Dec-like and take the trunk's stage channels."""
    if not callable(getattr(decoder, "forward", None)) or not hasattr(decoder,
                                                                      "encoder_channels"):
        raise ReidError(f"[generators.decoder] must be a texture decoder taking the four "
                        f"stage maps (e.g. sa_decoder); got {type(decoder).__name__}")
    channels = stage_channels(trunk)
    if list(decoder.encoder_channels) != channels:
        raise ReidError(f"[generators.decoder].encoder_channels = {decoder.encoder_channels} "
                        f"but the backbone's stages give {channels}: set encoder_channels = "
                        f"{channels}")
    return decoder  # type: ignore[return-value]


def epoch_multistep(context: MethodContext, optimizer: torch.optim.Optimizer,
                    milestones: Sequence[int], gamma: float, start: int = 0) -> ClockLR:
    """LR x gamma per milestone reached, epochs counted from ``start``; stateless (read from
    the engine's clock) so a resumed run gets the same LRs."""
    steps = list(milestones)
    return context.schedule(
        optimizer, lambda now: gamma ** sum(1 for m in steps if now.epoch - start >= m))


@torch.no_grad()
def estimate_texture(encoder: nn.Module, trunk: nn.Module, decoder: nn.Module,
                     images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``EstimatesTexture`` of both methods: SA-Dec's UV texture of person images (the eval
    transform's normalised tensors), B x 3 x size, RGB in [0, 1]. ``encoder`` (which holds
    ``trunk``) and ``decoder`` run in eval mode (running BN statistics, so an image's
    texture does not depend on its batch) and get their modes back."""
    modules = (encoder, decoder)
    was = [module.training for module in modules]
    for module in modules:
        module.eval()
    try:
        texture = decoder(*stage_maps(trunk, images), size=tuple(size))["texture"]
    finally:
        for module, mode in zip(modules, was, strict=True):
            module.train(mode)
    return (texture.float() * 0.5 + 0.5).clamp(0, 1)  # [-1, 1] (L_Rec's space) -> RGB


def to_tanh_range(images: torch.Tensor, normalize: str) -> torch.Tensor:
    """Undo the loader's normalisation and map to [-1, 1] for display."""
    if normalize == "imagenet":
        mean = images.new_tensor([0.485, 0.456, 0.406])[:, None, None]
        std = images.new_tensor([0.229, 0.224, 0.225])[:, None, None]
        return (images * std + mean) * 2 - 1
    if normalize == "none":
        return images * 2 - 1
    return images


def pad_to(images: torch.Tensor, size: Sequence[int], value: float = 0.0) -> torch.Tensor:
    """Centre ``images`` on a canvas of ``size`` (after fitting them in it), so a person
    image sits undistorted in a row of square textures."""
    height, width = int(size[0]), int(size[1])
    scale = min(height / images.shape[2], width / images.shape[3])
    h, w = max(int(images.shape[2] * scale), 1), max(int(images.shape[3] * scale), 1)
    resized = torch.nn.functional.interpolate(images.float(), size=(h, w), mode="bilinear",
                                              align_corners=False)
    canvas = resized.new_full((images.shape[0], images.shape[1], height, width), value)
    top, left = (height - h) // 2, (width - w) // 2
    canvas[:, :, top:top + h, left:left + w] = resized
    return canvas


def maybe_log_images(context: MethodContext, every: int, step: int,
                     rows: Mapping[str, torch.Tensor]) -> None:
    """At the end of every ``every``-th epoch and of the last one, a grid of rows
    (``images/textures`` in TensorBoard, ``<run>/images/textures/step-XXXXXXX.png``)."""
    if context.clock.ends_epoch(every, context.recipe.train.epochs):
        # the largest picture (the texture) sets the canvas; person images are padded
        size = max((batch.shape[-2:] for batch in rows.values()), key=lambda s: s[0] * s[1])
        context.log_images("textures", {name: pad_to(batch.detach(), size, -1.0)
                                        if batch.shape[-2:] != size else batch
                                        for name, batch in rows.items()}, step + 1)

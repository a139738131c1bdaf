"""The ``san_pg`` method: SAN-PG, the pseudo-texture generator.

SA-Enc's trunk + SA-Dec trained with the reconstruction loss L_Rec alone on image /
texture pairs (PIT, or the synthetic generator's true textures: ``loader.textures =
true``). Once trained, ``reid san-textures`` (or the ``san`` method with ``textures =
"san_pg"``) runs it over a re-ID dataset's training images to write their pseudo
ground-truth textures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from reidcore.api import MethodContext, Optimization, StepOptimizers
from torch import nn

from reid_plugin_san.common import (
    check_pairing,
    epoch_multistep,
    estimate_texture,
    maybe_log_images,
    to_tanh_range,
)
from reid_plugin_san.config import SanPGConfig
from reid_plugin_san.networks import resnet_trunk, stage_maps


class SanPG:
    """A ``reidcore.api.Method``: modules ``backbone`` and ``decoder``."""

    def __init__(self, config: SanPGConfig, context: MethodContext):
        self.config = config
        self.context = context
        self.backbone = context.build_backbone(default="timm")
        self.trunk = resnet_trunk(self.backbone)
        self.decoder = check_pairing(context.build_generator("decoder"), self.trunk)
        self.rec = context.build_loss("texture_l1")
        loader = context.recipe.loader
        self.texture_size = (loader.texture_height, loader.texture_width)

    def modules(self) -> Mapping[str, nn.Module]:
        return {"backbone": self.backbone, "decoder": self.decoder}

    def configure_optimizers(self) -> Optimization:
        c, context = self.config, self.context
        params = [p for m in (self.backbone, self.decoder) for p in m.parameters()]
        optimizer = context.make_optimizer({"san_pg": params}, kind="adam", lr=c.lr,
                                           betas=(c.beta1, c.beta2),
                                           weight_decay=c.weight_decay)
        scheduler = epoch_multistep(context, optimizer, c.milestones, c.gamma)
        return Optimization({"san_pg": optimizer}, {"san_pg": scheduler})

    def decode(self, images: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        """Textures in [-1, 1] of normalised images (the recipe's loader normalisation)."""
        return self.decoder(*stage_maps(self.trunk, images),
                            size=size or self.texture_size)["texture"]

    def estimate_texture(self, images: torch.Tensor) -> torch.Tensor:
        """``EstimatesTexture`` (``common.estimate_texture``, as SAN's): the pseudo texture
        in RGB [0, 1], trunk and SA-Dec in eval mode, so the core's proving ground scores
        the teacher as it scores SAN."""
        return estimate_texture(self.backbone, self.trunk, self.decoder, images,
                                self.texture_size)

    def training_step(self, batch: Mapping[str, Any], step: int,
                      optim: StepOptimizers) -> dict[str, torch.Tensor]:
        context = self.context
        self.backbone.train()
        self.decoder.train()
        images, textures = context.inputs(batch, "images", "textures")
        with context.precision.autocast():
            decoded = self.decode(images)
            loss = self.rec({"texture": decoded}, {"textures": textures})
        optim.update("san_pg", loss)
        maybe_log_images(context, self.config.log_images_every, step,
                         {"image": to_tanh_range(images, context.recipe.loader.normalize),
                          "target": textures, "decoded": decoded.detach()})
        return {"loss": loss.detach(), "loss/rec": loss.detach()}

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled layer-4 map (SAN-PG is not a re-ID model; this makes its runs
        evaluable like any other)."""
        return stage_maps(self.trunk, images)[-1].mean(dim=(2, 3))


def recipe_example() -> dict[str, Any]:
    return {
        "backbone": {"name": "timm", "model": "resnet18", "last_stride": 1},
        "generators": {"decoder": {"name": "sa_decoder", "encoder_channels": [64, 128, 256, 512],
                                   "widths": [32, 16, 8, 8, 4]}},
        "data": {"source": [{"name": "synthetic", "size": "64x32"}]},
        "loader": {"height": 64, "width": 32, "textures": True, "texture_height": 64,
                   "texture_width": 64},
    }

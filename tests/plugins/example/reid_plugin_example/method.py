"""A small trainable method written on ``reidcore.api`` alone: backbone + linear classifier,
trained with the recipe's ``[[losses]]`` (default: cross-entropy and ``embedding_norm``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from reid_plugin_example.plugin import TinyClassifierConfig
from reidcore.api import Batch, MethodContext, Optimization, StepOptimizers

DEFAULT_LOSSES = [("cross_entropy", 1.0, {"label_smoothing": 0.1}),
                  ("embedding_norm", 0.1)]


class TinyClassifier:
    """Modules ``network`` (backbone + classifier); ``embed`` gives the backbone's vector."""

    def __init__(self, config: TinyClassifierConfig, context: MethodContext):
        self.context = context
        backbone = context.build_backbone(default="timm")
        self.network = nn.ModuleDict({
            "backbone": backbone,
            "classifier": nn.Linear(backbone.feature_dim, context.num_classes)})
        self.losses = context.build_losses(backbone.feature_dim, DEFAULT_LOSSES)
        self.scale = config.scale

    def modules(self) -> Mapping[str, nn.Module]:
        return {"network": self.network, "losses": self.losses}

    def configure_optimizers(self) -> Optimization:
        optimizer = self.context.make_optimizer({
            "backbone": self.network["backbone"].parameters(),
            "classifier": self.network["classifier"].parameters()})
        return Optimization({"main": optimizer}, {"main": self.context.make_scheduler(optimizer)})

    def training_step(self, batch: Batch, step: int,
                      optim: StepOptimizers) -> dict[str, torch.Tensor]:
        images, pids = self.context.inputs(batch, "images", "pids")
        with self.context.precision.autocast():
            embeddings = self.network["backbone"](images)
            logits = self.network["classifier"](embeddings * self.scale)
        total, parts = self.losses({"embeddings": embeddings, "features": embeddings,
                                    "logits": logits}, {"pids": pids})
        optim.update("main", total)
        return {"loss": total.detach(),
                **{f"loss/{name}": value.detach() for name, value in parts.items()}}

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.network["backbone"](images)


def example_recipe() -> dict[str, Any]:
    """The contract checks' recipe: the plugin's tiny CNN as the backbone."""
    return {"backbone": {"name": "tiny_cnn", "width": 4, "feature_dim": 8}}

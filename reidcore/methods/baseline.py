"""The ``baseline`` method: backbone + BNNeck + cross-entropy (label smoothing) + triplet."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from reidcore.engine.context import MethodContext
from reidcore.engine.optim import Optimization
from reidcore.engine.step import StepOptimizers
from reidcore.interfaces import Batch
from reidcore.methods.config import BaselineConfig
from reidcore.models.heads import BNNeck, Classifier, Embedding

DEFAULT_LOSSES = (("cross_entropy", 1.0), ("triplet", 1.0))


class BaselineNetwork(nn.Module):
    """``forward(images) -> {"features", "neck_features", "logits"}``."""

    def __init__(self, backbone: Any, num_classes: int, config: BaselineConfig):
        super().__init__()
        self.backbone = backbone
        dim = int(backbone.feature_dim)
        self.embedding = None
        if config.embedding_dim:
            torchreid_fc = config.embedding_head == "linear_bn_relu"
            self.embedding = Embedding(dim, config.embedding_dim, batch_norm=torchreid_fc,
                                       relu=torchreid_fc, bias=True)
        dim = config.embedding_dim or dim
        self.feature_dim = dim
        self.neck = BNNeck(dim) if config.neck == "bnneck" else nn.Identity()
        self.classifier = Classifier(dim, num_classes, bias=config.classifier_bias)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(images)
        if self.embedding is not None:
            features = self.embedding(features)
        neck_features = self.neck(features)
        out = {"features": features, "neck_features": neck_features}
        if self.training:
            out["logits"] = self.classifier(neck_features)
        return out

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {"backbone": list(self.backbone.parameters()),
                  "neck": list(self.neck.parameters()),
                  "classifier": list(self.classifier.parameters())}
        if self.embedding is not None:
            groups["embedding"] = list(self.embedding.parameters())
        return groups


class Baseline:
    """A :class:`reidcore.interfaces.Method`. Modules: ``network`` and ``losses`` (the latter
    has parameters only with a center loss, trained by its own SGD optimizer ``center``, or
    a margin head such as ArcFace, trained in the main optimizer's group ``losses``).
    A plain object, not an ``nn.Module``: ``modules()`` is the Method contract's."""

    def __init__(self, config: BaselineConfig, context: MethodContext):
        self.config = config
        self.context = context
        self.network = BaselineNetwork(context.build_backbone(), context.num_classes, config)
        self.losses = context.build_losses(self.network.feature_dim, DEFAULT_LOSSES)
        self.train_network = context.wrap(self.network)
        for loss, weight in zip(self.losses.losses, self.losses.weights, strict=True):
            if getattr(loss, "own_optimizer", None) and weight > 0:
                # the strong baseline's trick: centers learn at their own rate, whatever
                # the weight (their gradient is divided by it)
                for param in loss.parameters():
                    param.register_hook(functools.partial(torch.mul, other=1.0 / weight))

    def modules(self) -> Mapping[str, nn.Module]:
        return {"network": self.network, "losses": self.losses}

    def configure_optimizers(self) -> Optimization:
        context = self.context
        groups: dict[str, Any] = dict(self.network.parameter_groups())
        # losses with parameters of their own (arcface / cosface class weights) learn with
        # the network; the group exists only then (center losses have their own optimizer)
        shared = [param for loss in self.losses.losses
                  if not getattr(loss, "own_optimizer", None) for param in loss.parameters()]
        if shared:
            groups["losses"] = shared
        main = context.make_optimizer(groups)
        optimizers = {"main": main}
        schedulers = {"main": context.make_scheduler(main)}
        centers = [loss for loss in self.losses.losses if getattr(loss, "own_optimizer", None)]
        for index, loss in enumerate(centers):
            name = "center" if index == 0 else f"center{index}"
            optimizers[name] = context.make_optimizer({name: loss.parameters()}, kind="sgd",
                                                      lr=loss.lr, momentum=0.0,
                                                      weight_decay=0.0)
        return Optimization(optimizers, schedulers)

    def training_step(self, batch: Batch, step: int,
                      optim: StepOptimizers) -> dict[str, torch.Tensor]:
        images, pids = self.context.inputs(batch, "images", "pids")
        with self.context.precision.autocast():
            outputs = self.train_network(images)
        total, parts = self.losses(outputs, {"pids": pids})
        optim.update(list(optim.optimizers), total)
        metrics = {"loss": total.detach()}
        metrics.update({f"loss/{name}": value.detach() for name, value in parts.items()})
        logits = outputs.get("logits")
        if logits is not None:
            metrics["accuracy"] = (logits.detach().argmax(1) == pids).float().mean()
        return metrics

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        outputs = self.network(images)
        key = "neck_features" if self.config.retrieval == "after_neck" else "features"
        return outputs[key]


def build(config: BaselineConfig, *, context: MethodContext) -> Baseline:
    return Baseline(config, context)

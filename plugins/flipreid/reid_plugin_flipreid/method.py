"""The ``flipreid`` method: the FlipReID structure around the FlipReID network.

Per training step (``variant = "flipreid"``): the network embeds the batch and its
horizontal flip (two calls, shared weights); each of the three embeddings is merged as
the mean of the two views; every loss of the recipe is applied to each embedding and
summed over the embeddings, with ``outputs`` per embedding::

    features           the merged embedding (triplet)
    logits             that embedding's head on the merged embedding (cross-entropy)
    features_original  the embedding of the images        (flipping loss)
    features_flipped   the embedding of the flipped images

so the total is ``sum_e triplet(merged_e) + sum_e CE(head_e(merged_e)) + L_flip``. The
variants ``flip_tta`` and ``plain`` train on the images alone (no flipping loss) and embed
with and without flip averaging. ``embed`` concatenates the three embeddings (4096-d for
ResNet-50); recipes rank them with the cosine distance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from reidcore.api import (
    Clock,
    ClockLR,
    MethodContext,
    Optimization,
    ReidError,
    StepOptimizers,
)
from torch import nn

from reid_plugin_flipreid.config import FlipReIDConfig
from reid_plugin_flipreid.losses import FlippingLoss
from reid_plugin_flipreid.networks import FlipReIDNetwork, build_network
from reid_plugin_flipreid.schedule import flipreid_lr

FLIP_VARIANTS = ("flipreid",)
TTA_VARIANTS = ("flipreid", "flip_tta")


def default_losses(variant: str) -> list[tuple[str, float, dict[str, Any]]]:
    """(component, weight, options) when the recipe lists no ``[[losses]]`` (the
    ``default`` of ``context.build_losses``): the official code's soft-margin batch-hard
    triplet, unsmoothed cross-entropy and (with the flip structure) the flipping loss, all
    with weight 1."""
    losses = [("triplet", 1.0, {"soft_margin": True, "normalize": False}),
              ("cross_entropy", 1.0, {"label_smoothing": 0.0})]
    if variant in FLIP_VARIANTS:
        losses.append(("flipping", 1.0, {}))
    return losses


def phase_lr(context: MethodContext, optimizer: torch.optim.Optimizer, start: int,
             config: FlipReIDConfig) -> ClockLR:
    """FlipReID's per-epoch LR for one optimizer of one phase, read from the engine's clock
    (``context.schedule``).

    ``start`` is the first epoch of the phase (the schedule restarts there); stateless like
    the engine's schedules, so a resumed run gets the same LRs.
    """
    c = config

    def factor(now: Clock) -> float:
        return flipreid_lr(max(int(now.epoch) - start, 0), 1.0, c.lr_floor, c.warmup_epochs,
                           c.drop_every, c.drop_factor)

    return context.schedule(optimizer, factor)


class FlipReID:
    """A ``reidcore.api.Method``: modules ``network`` and ``losses``."""

    def __init__(self, config: FlipReIDConfig, context: MethodContext):
        self.config = config
        self.context = context
        backbone = context.build_backbone(default="timm")
        try:
            self.network: FlipReIDNetwork = build_network(
                backbone, context.num_classes, region_num=config.region_num,
                gem_p=config.gem_p, gem_trainable=config.gem_trainable, clip=config.clip,
                bn_eps=config.bn_eps, bn_momentum=config.bn_momentum)
        except ValueError as exc:
            raise ReidError(f"flipreid: {exc}") from None
        self.flip_structure = config.variant in FLIP_VARIANTS
        self.losses = context.build_losses(self.network.feature_dim,
                                           default=default_losses(config.variant))
        if not self.flip_structure and any(isinstance(loss, FlippingLoss)
                                           for loss in self.losses.losses):
            raise ReidError(f"flipreid: the flipping loss needs the flip structure, but "
                            f"method.variant = '{config.variant}'; remove it from "
                            f"[[losses]] or use variant = 'flipreid'")
        # Under DDP the frozen backbone gets no gradient in the first phase: DDP must look
        # for unused parameters then, or it waits for their gradients and fails.
        self.train_network = context.wrap(self.network,
                                          find_unused_parameters=config.frozen_epochs > 0)
        self._frozen: bool | None = None

    # -- the Method contract --------------------------------------------------------------

    def modules(self) -> Mapping[str, nn.Module]:
        return {"network": self.network, "losses": self.losses}

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named groups: ``backbone`` (trunk and both stage-4 copies), ``regional`` (the
        stripe convolutions), ``heads`` and ``gem`` (the exponents: no weight decay)."""
        net = self.network
        return {"backbone": [p for m in net.backbone_modules() for p in m.parameters()],
                "regional": list(net.regional_convs.parameters()),
                "heads": list(net.heads.parameters()),
                "gem": list(net.gem_exponents())}

    def _optimizer(self, groups: Mapping[str, list[nn.Parameter]]) -> torch.optim.Optimizer:
        """Adam (``adam_eps`` as Keras) over ``groups`` at ``train.lr`` (times the recipe's
        ``lr_mult``) with coupled ``train.weight_decay``, none on the GeM exponents."""
        named: dict[str, Any] = {name: ({"params": params, "weight_decay": 0.0}
                                        if name == "gem" else params)
                                 for name, params in groups.items() if params}
        return self.context.make_optimizer(named, kind="adam", betas=(0.9, 0.999),
                                           eps=self.config.adam_eps)

    def configure_optimizers(self) -> Optimization:
        context = self.context
        groups = self.parameter_groups()
        optimizers: dict[str, torch.optim.Optimizer] = {}
        schedulers: dict[str, Any] = {}
        frozen = self.config.frozen_epochs
        if frozen:
            new_layers = {k: v for k, v in groups.items() if k != "backbone"}
            optimizers["frozen"] = self._optimizer(new_layers)
            schedulers["frozen"] = phase_lr(context, optimizers["frozen"], 0, self.config)
        optimizers["main"] = self._optimizer(groups)
        schedulers["main"] = phase_lr(context, optimizers["main"], frozen, self.config)
        return Optimization(optimizers, schedulers)

    def _set_frozen(self, frozen: bool) -> None:
        if frozen != self._frozen:
            self.network.freeze_backbone(frozen)
            self._frozen = frozen

    @staticmethod
    def _carry_adam_state(optim: StepOptimizers) -> None:
        """At the phase switch, hand the ``frozen`` optimizer's Adam state to ``main``.

        The official code compiles the same Keras ``Adam`` object again after unfreezing,
        so phase B continues its state: the new layers keep their moments, and the
        backbone's variables get fresh (zero) moments but share the optimizer's step
        counter (Keras bias-corrects every variable with ``iterations + 1``). PyTorch's
        Adam keeps a step per parameter, so the backbone's parameters start at the new
        layers' step. Done once, on the first step of phase B, while ``main`` has no state;
        a run resumed later in phase B loads ``main``'s state from its checkpoint instead
        (a run resumed exactly at the switch still finds ``main`` empty and carries over
        from the restored ``frozen``). ``frozen``'s state is then released.
        """
        source = optim["frozen"] if "frozen" in optim else None
        target = optim["main"]
        if source is None or target.state or not source.state:
            return
        step = next(iter(source.state.values()))["step"]
        for group in target.param_groups:
            for param in group["params"]:
                if param in source.state:
                    target.state[param] = {k: v.clone() if torch.is_tensor(v) else v
                                           for k, v in source.state[param].items()}
                else:
                    target.state[param] = {
                        "step": step.clone() if torch.is_tensor(step) else step,
                        "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
                        "exp_avg_sq": torch.zeros_like(param,
                                                       memory_format=torch.preserve_format)}
        source.state.clear()

    def training_step(self, batch: Mapping[str, Any], step: int,
                      optim: StepOptimizers) -> dict[str, torch.Tensor]:
        frozen = self.context.clock.epoch < self.config.frozen_epochs
        self._set_frozen(frozen)
        if not frozen:
            self._carry_adam_state(optim)
        images, pids = self.context.inputs(batch, "images", "pids")
        targets = {"pids": pids}
        with self.context.precision.autocast():
            out = self.train_network(images, flip=self.flip_structure, classify=True)
        total, parts = self.loss(out, targets)
        optim.update("frozen" if frozen else "main", total)
        metrics = {"loss": total.detach()}
        metrics.update({f"loss/{name}": value.detach() for name, value in parts.items()})
        metrics["accuracy"] = torch.stack(
            [(logits.detach().argmax(1) == pids).float().mean() for logits in out["logits"]]
        ).mean()
        for name, p in zip(self.embedding_names(), self.network.gem_exponents(), strict=True):
            metrics[f"gem_p/{name}"] = p.detach().clone()  # a copy: the optimizer moves p
        return metrics

    def embedding_names(self) -> list[str]:
        return ["global"] + [f"region{i + 1}" for i in range(self.config.region_num)]

    def loss(self, out: Mapping[str, list[torch.Tensor]], targets: Mapping[str, Any]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Every recipe loss on every embedding, summed: (total, per-loss sums)."""
        total = None
        parts: dict[str, torch.Tensor] = {}
        for index in range(len(out["merged"])):
            outputs = {"features": out["merged"][index], "logits": out["logits"][index],
                       "features_original": out["original"][index]}
            if "flipped" in out:
                outputs["features_flipped"] = out["flipped"][index]
            value, values = self.losses(outputs, targets)
            total = value if total is None else total + value
            for name, part in values.items():
                parts[name] = part if name not in parts else parts[name] + part
        return total, parts

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The three embeddings concatenated; flip-averaged unless ``variant = "plain"``."""
        embeddings = self.network.embeddings(images)
        if self.config.variant in TTA_VARIANTS:
            flipped = self.network.embeddings(images.flip(3))
            embeddings = [(a + b) / 2 for a, b in zip(embeddings, flipped, strict=True)]
        return torch.cat(embeddings, dim=1)


def example_recipe() -> dict[str, Any]:
    """The recipe of the contract checks (the method name is filled in by the check): no
    frozen phase (its first step would train the new layers only: the backbone's ``main``
    optimizer would not step), timm's resnet10t with last stride 1 (a 4 x 2 stage-4 map at
    64 x 32, so each stripe's GeM exponent has a gradient), a batch of 2 x 2 images."""
    return {"method": {"frozen_epochs": 0},
            "backbone": {"name": "timm", "model": "resnet10t", "last_stride": 1},
            "loader": {"height": 64, "width": 32, "identities": 2, "instances": 2}}

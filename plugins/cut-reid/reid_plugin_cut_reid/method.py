"""The ``cut_reid`` method: Synth-ReID's CUT translation with a joint re-ID branch.

One training step (method notes A.7), with a labelled source batch ``x`` and an unlabelled
target batch ``y``:

1. G step (translator, PatchNCE heads, re-ID branch; the discriminator is frozen):
   ``fake = G(x)``; L_G = w_gen * LSGAN(D(fake), 1) + w_sim * FM(D_l(y), D_l(fake))
   + w_nce * NCE(x, fake) [+ w_idt * NCE(y, G(y))] + w_x * CE_ls(reid(enc(x)), pids)
   [+ w_t * triplet]. One update (``optim.update``) of the translator, the NCE heads and
   the re-ID branch, in that order, inside ``optim.frozen(D)``.
2. D step: L_D = w_dis * (LSGAN(D(y), 1) + LSGAN(D(fake.detach()), 0))
   + w_sim * FM(D_l(x), D_l(fake.detach())); one update of the discriminator.
   With ``guide_gen = false`` the re-ID branch then trains on the detached encoder output.

With ``translation = false`` (the clean ablation) one update of the translator (its
decoder frozen) and the re-ID branch by the re-ID loss alone.

``embed`` is the re-ID branch's BNNeck feature of the encoder's output, plus that of the
flipped image with ``eval_flip`` (a sum, as Synth-ReID; leave the evaluator's ``flip`` off).

Several processes (``reid run --nproc N``): the steps call the translator's ``encode`` /
``decode`` / ``features`` and the discriminator's ``features`` directly, which DDP's forward
wrapper cannot see, so no module is wrapped: each ``optim.update`` averages the gradients
of the optimizers it steps over the processes (the engine's; frozen parameters excluded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from reidcore.api import (
    Batch,
    Clock,
    MethodContext,
    Optimization,
    ReidError,
    StepOptimizers,
    batch_hard_triplet,
)
from torch import nn

from reid_plugin_cut_reid.config import CutReidConfig, PatchNCEConfig
from reid_plugin_cut_reid.losses import (
    PatchNCELoss,
    cross_entropy_label_smooth,
    feature_matching,
    lsgan,
)
from reid_plugin_cut_reid.networks import ReidBranch

TRANSLATOR, DISCRIMINATOR = "translator", "discriminator"
DEFAULT_COMPONENTS = {TRANSLATOR: "resnet_generator", DISCRIMINATOR: "patch_discriminator"}


def epoch_multistep(milestones: Sequence[int], gamma: float) -> Callable[[Clock], float]:
    """The LR factor gamma^(number of milestones <= the current epoch), read from the
    engine's clock (``context.schedule``: stateless, so a resumed run matches)."""
    steps = list(milestones)
    return lambda now: gamma ** sum(1 for m in steps if now.epoch >= m)


class CutReid:
    """A ``Method`` (``reidcore.api.Method``) (see the module docstring). Modules:
    ``translator`` (G), ``discriminator`` (D), ``nce`` (the PatchNCE heads) and ``reid``."""

    def __init__(self, config: CutReidConfig, context: MethodContext):
        self.config = config
        self.context = context
        self.translator = context.build_generator(TRANSLATOR)
        self.discriminator = context.build_generator(DISCRIMINATOR)
        for role, net, needs in ((TRANSLATOR, self.translator, ("encode", "decode", "features")),
                                 (DISCRIMINATOR, self.discriminator, ("features",))):
            missing = [name for name in needs if not hasattr(net, name)]
            if missing:
                raise ReidError(f"cut_reid's [generators.{role}] must provide "
                                f"{', '.join(needs)} (e.g. {DEFAULT_COMPONENTS[role]}); "
                                f"{type(net).__name__} has no {', '.join(missing)}")
        g = self.translator
        self.nce_layers = list(config.nce_layers or g.default_nce_layers)
        self.feature_layer = g.feature_layer
        self.nce = PatchNCELoss(PatchNCEConfig(
            in_channels=g.layer_channels(self.nce_layers), num_patches=config.num_patches,
            head_dim=config.head_dim, temperature=config.nce_temperature,
            head_init=config.head_init))
        if not config.translation and not config.guide_gen:
            raise ReidError("cut_reid: translation = false trains the encoder by the re-ID "
                            "loss alone, which needs guide_gen = true")
        self.reid = ReidBranch(g.feature_channels, max(int(context.num_classes), 1),
                               config.reid_layers, config.reid_width,
                               config.classifier_init)

    # -- the Method contract -----------------------------------------------------------------

    def modules(self) -> Mapping[str, nn.Module]:
        return {"translator": self.translator, "discriminator": self.discriminator,
                "nce": self.nce, "reid": self.reid}

    def configure_optimizers(self) -> Optimization:
        """Four Adams (betas ``(beta1, beta2)``, ``weight_decay``; the NCE heads
        ``(beta1, head_beta2)``, ``head_weight_decay``), all at ``lr``; per-epoch steps by
        ``gamma`` at ``milestones`` (the re-ID branch: ``reid_milestones``)."""
        c, context = self.config, self.context

        def adam(name: str, module: nn.Module, beta2: float,
                 decay: float) -> torch.optim.Optimizer:
            return context.make_optimizer({name: list(module.parameters())}, kind="adam",
                                          lr=c.lr, betas=(c.beta1, beta2), weight_decay=decay)

        optimizers = {
            "translator": adam("translator", self.translator, c.beta2, c.weight_decay),
            "discriminator": adam("discriminator", self.discriminator, c.beta2,
                                  c.weight_decay),
            "nce": adam("nce", self.nce, c.head_beta2, c.head_weight_decay),
            "reid": adam("reid", self.reid, c.beta2, c.weight_decay),
        }
        schedulers = {name: context.schedule(opt, epoch_multistep(
                          c.reid_milestones if name == "reid" else c.milestones, c.gamma))
                      for name, opt in optimizers.items()}
        return Optimization(optimizers, schedulers)

    def training_step(self, batch: Batch, step: int,
                      optim: StepOptimizers) -> dict[str, torch.Tensor]:
        if not self.config.translation:
            return self._reid_only_step(batch, optim)
        c, context = self.config, self.context
        precision = context.precision
        x, y, pids = context.inputs(batch, "images", "target.images", "pids")
        pids = pids.long()
        g, d = self.translator, self.discriminator
        layers = [*self.nce_layers, self.feature_layer]

        # 1. G step: translator, NCE heads and re-ID branch; D frozen
        with optim.frozen(d):
            with precision.autocast():
                code, feats = g.encode(x, layers)
                source_feats, reid_input = feats[:-1], feats[-1]
                fake = g.decode(code)
                d_fake, d_fake_layers = d.features(fake)
                with torch.no_grad():
                    _, d_target_layers = d.features(y)
                fake_feats = g.features(fake, self.nce_layers)
                loss_gen = lsgan(d_fake, 1.0)
                loss_sim = feature_matching(d_target_layers, d_fake_layers, c.sim_type)
                loss_nce = self.nce.nce(source_feats, fake_feats)
                total = (c.weight_gen * loss_gen + c.weight_sim * loss_sim
                         + c.weight_nce * loss_nce)
                metrics = {"loss/gen": loss_gen, "loss/sim": loss_sim, "loss/nce": loss_nce}
                if c.weight_idt > 0:
                    target_feats = g.features(y, self.nce_layers)
                    idt_feats = g.features(g(y), self.nce_layers)
                    loss_idt = self.nce.nce(target_feats, idt_feats)
                    total = total + c.weight_idt * loss_idt
                    metrics["loss/idt"] = loss_idt
                if c.guide_gen:
                    reid_total, reid_metrics = self._reid_loss(reid_input, pids)
                    total = total + reid_total
                    metrics.update(reid_metrics)
            optim.update(("translator", "nce") + (("reid",) if c.guide_gen else ()), total)
        metrics["loss/generator"] = total

        # 2. D step
        fake_detached = fake.detach()
        with precision.autocast():
            d_real = d(y)
            d_fake_again, d_fake_layers = d.features(fake_detached)
            _, d_source_layers = d.features(x)
            loss_d_real = lsgan(d_real, 1.0)
            loss_d_fake = lsgan(d_fake_again, 0.0)
            loss_d_sim = feature_matching(d_source_layers, d_fake_layers, c.sim_type)
            loss_d = c.weight_dis * (loss_d_real + loss_d_fake) + c.weight_sim * loss_d_sim
        optim.update("discriminator", loss_d)
        metrics.update({"loss/d_real": loss_d_real, "loss/d_fake": loss_d_fake,
                        "loss/d_sim": loss_d_sim, "loss/discriminator": loss_d})

        # re-ID branch on its own (guide_gen = false): detached encoder features
        if not c.guide_gen:
            with precision.autocast():
                reid_total, reid_metrics = self._reid_loss(reid_input.detach(), pids)
            optim.update("reid", reid_total)
            metrics.update(reid_metrics)

        metrics["loss"] = metrics["loss/generator"] + metrics["loss/discriminator"]
        self._maybe_log_images(step, {"source": x, "translated": fake_detached, "target": y})
        return {k: v.detach() for k, v in metrics.items()}

    def _reid_only_step(self, batch: Batch, optim: StepOptimizers) -> dict[str, torch.Tensor]:
        """``translation = false``: the encoder and the re-ID branch step on the re-ID loss
        of the source batch; the decoder (frozen: no gradient, not averaged over the
        processes), the discriminator and the NCE heads do not step (the target batch is
        loaded but unused)."""
        context = self.context
        x, pids = context.inputs(batch, "images", "pids")
        with optim.frozen(self.translator.decoder):
            with context.precision.autocast():
                code, _ = self.translator.encode(x)
                total, metrics = self._reid_loss(code, pids.long())
            optim.update(("translator", "reid"), total)
        metrics["loss"] = total
        return {k: v.detach() for k, v in metrics.items()}

    def _reid_loss(self, code: torch.Tensor, pids: torch.Tensor
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        out = self.reid(code)
        loss_x = cross_entropy_label_smooth(out["logits"], pids, c.label_smoothing)
        total = c.weight_x * loss_x
        metrics = {"loss/reid_ce": loss_x,
                   "accuracy": (out["logits"].detach().argmax(1) == pids).float().mean()}
        if c.weight_t > 0:
            loss_t = batch_hard_triplet(out["features"], pids, c.triplet_margin)
            total = total + c.weight_t * loss_t
            metrics["loss/reid_triplet"] = loss_t
        return total, metrics

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        features = self.reid(self.translator.encoder(images))["neck_features"]
        if self.config.eval_flip:
            features = features + self.reid(
                self.translator.encoder(images.flip(3)))["neck_features"]
        return features

    # -- extras ------------------------------------------------------------------------------

    @torch.no_grad()
    def translate(self, images: torch.Tensor) -> torch.Tensor:
        """Translated images (same normalisation as the input: [-1, 1])."""
        return self.translator(images)

    def _maybe_log_images(self, step: int, rows: Mapping[str, torch.Tensor]) -> None:
        """At the end of every ``log_images_every``-th epoch (and of the last one), a grid of
        source / translated / target rows (``images/translations`` in TensorBoard and
        ``<run>/images/translations/step-XXXXXXX.png``, step = steps done)."""
        if self.context.clock.ends_epoch(self.config.log_images_every,
                                         self.context.recipe.train.epochs):
            self.context.log_images("translations", rows, step + 1)


# --- contract example -----------------------------------------------------------------------


def recipe_example() -> dict[str, Any]:
    """The contract check's recipe: small translator, discriminator and re-ID branch."""
    return {
        "method": {"num_patches": 16, "reid_layers": [1, 1, 1], "reid_width": 8},
        "generators": {TRANSLATOR: {"name": "resnet_generator", "ngf": 8, "blocks": 2},
                       DISCRIMINATOR: {"name": "patch_discriminator", "ndf": 8}},
        "data": {"source": [{"name": "synthetic", "size": "64x32"}],
                 "target": [{"name": "synthetic", "style": "real", "size": "64x32"}]},
        "loader": {"height": 64, "width": 32, "normalize": "tanh"},
        "evaluate": {"name": "ranking", "flip": False},
    }

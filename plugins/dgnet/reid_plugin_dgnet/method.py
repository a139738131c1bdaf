"""The ``dgnet`` method: one DG-Net iteration per engine step (official ``trainer.py`` order).

Per iteration, with batches A (``images``, ``positives``) and B (``second``):

1. forward: structure codes s = Es(gray(x)); appearance codes f = Ea(x) (clean images,
   detached); self (G(s_a, f_a)), same-identity (G(s_a, f_pa)) and cross-identity
   (x_ba = G(s_b, f_a), x_ab = G(s_a, f_b)) generations; identity logits of the *erased*
   real images;
2. D update on the detached x_ba, x_ab against the real x_a, x_b (LSGAN + R1);
3. generator update, one backward for Ea, Es and G together, D frozen: image reconstruction, code
   reconstruction (Es again on the detached images with probability ``encoder_again``,
   else a frozen copy of Es on the live ones), the code's cycle, identity on real and
   (through a frozen copy of Ea) on generated images, adversarial, and after the warm-up
   the teacher's KL on the primary head and the fine-grained CE (structure provider's
   label) on the detached generated images through the live Ea.

The step reads like Lightning's manual-optimization GAN example, one call per update (the
engine's ``optim`` clears the gradients, runs the backward under the run's precision, the
DDP sync, clipping and the step)::

    optim.update("discriminator", loss_d)
    with optim.frozen(self.discriminator):
        total = ...
        optim.update(("generator", "ea"), total)   # G (Es + decoder) steps, then Ea

The frozen copies of Ea and Es are made once and refreshed in place every iteration (a
parameter copy, not a deep copy); their BatchNorm layers run on batch statistics, as the
official ``train_bn``.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from typing import Any

import torch
from reidcore.api import Batch, MethodContext, Optimization, ReidError, StepOptimizers
from torch import nn
from torch.nn import functional as F

from reid_plugin_dgnet.augment import random_erasing
from reid_plugin_dgnet.config import DGNetConfig
from reid_plugin_dgnet.losses import (
    discriminator_loss,
    generator_loss,
    l1,
    soft_label,
    teacher_kl,
)
from reid_plugin_dgnet.networks import AppearanceEncoder, to_gray
from reid_plugin_dgnet.schedule import loss_weights, lr_factor
from reid_plugin_dgnet.swap import swap_rows
from reid_plugin_dgnet.teacher import Teacher, load_teacher


def _sync(frozen: nn.Module, live: nn.Module) -> None:
    """Copy ``live``'s parameters and buffers into ``frozen`` in place."""
    with torch.no_grad():
        for dst, src in zip(frozen.parameters(), live.parameters(), strict=True):
            dst.copy_(src)
        for dst, src in zip(frozen.buffers(), live.buffers(), strict=True):
            dst.copy_(src)


def _bn_train(module: nn.Module) -> nn.Module:
    """Eval mode except BatchNorm (batch statistics): the official ``train_bn``."""
    module.eval()
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
    return module


class DGNet:
    """A :class:`reidcore.api.Method`; modules ``ea``, ``es``, ``decoder``, ``discriminator``."""

    def __init__(self, config: DGNetConfig, context: MethodContext):
        self.config, self.context = config, context
        self.ea = AppearanceEncoder(context.build_backbone("timm"), context.num_classes,
                                    config.stripes, config.bottleneck, config.primary_dropout,
                                    config.fine_dropout)
        self.es = context.build_generator("structure")
        self.decoder = context.build_generator("decoder")
        self.discriminator = context.build_generator("discriminator")
        self._check_sizes()
        self.normalize = context.recipe.loader.normalize
        self.teacher: Teacher | None = None
        if context.run_dir is not None and not context.meta:  # fail before any training
            self.teacher = load_teacher(context, config.teacher, config.teacher_bn)
        self._ea_frozen: nn.Module | None = None
        self._es_frozen: nn.Module | None = None
        self._teacher_dropout = False  # method.teacher_dropout = "after_first_grid"

    def _check_sizes(self) -> None:
        decoder = getattr(self.decoder, "config", None)
        if decoder is None:
            return
        if decoder.code_dim != self.ea.code_dim:
            raise ReidError(f"generators.decoder.code_dim = {decoder.code_dim} but Ea's "
                            f"appearance code has {self.ea.channels} channels x "
                            f"{self.ea.stripes} stripes = {self.ea.code_dim}: set "
                            f"generators.decoder.code_dim = {self.ea.code_dim}")
        channels = getattr(self.es, "output_channels", decoder.dim)
        if channels != decoder.dim:
            raise ReidError(f"generators.decoder.dim = {decoder.dim} but the structure "
                            f"encoder outputs {channels} channels: set "
                            f"generators.decoder.dim = {channels}")

    # -- Method contract ---------------------------------------------------------------

    def modules(self) -> Mapping[str, nn.Module]:
        return {"ea": self.ea, "es": self.es, "decoder": self.decoder,
                "discriminator": self.discriminator}

    def configure_optimizers(self) -> Optimization:
        """The official optimizers, built by the core (``train.lr_mult``, ``freeze`` and
        ``optimizer_impl`` apply; the ``[train]`` LR keys do not, see the spec's needs):
        Ea by SGD (Nesterov when ``momentum > 0``), its heads at ``head_lr_mult`` times
        ``lr_ea``; Es + G and D by Adam with ``(beta1, beta2)``; every LR follows
        :func:`~reid_plugin_dgnet.schedule.lr_factor` of the engine's iteration."""
        cfg, context = self.config, self.context
        groups = self.ea.parameter_groups()
        ea = context.make_optimizer(
            {"backbone": groups["backbone"],
             "heads": {"params": groups["heads"], "lr_mult": cfg.head_lr_mult}},
            kind="sgd", lr=cfg.lr_ea, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
            weight_decay=cfg.weight_decay)
        betas = (cfg.beta1, cfg.beta2)
        gen = context.make_optimizer(
            {"generator": [*self.es.parameters(), *self.decoder.parameters()]},
            kind="adam", lr=cfg.lr_g, betas=betas, weight_decay=cfg.weight_decay)
        dis = context.make_optimizer(
            {"discriminator": list(self.discriminator.parameters())},
            kind="adam", lr=cfg.lr_d, betas=betas, weight_decay=cfg.weight_decay)
        optimizers = {"ea": ea, "generator": gen, "discriminator": dis}
        schedulers = {name: context.schedule(opt, lambda clock: lr_factor(cfg, clock.step))
                      for name, opt in optimizers.items()}
        return Optimization(optimizers, schedulers)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Both heads' 512-d features, each L2-normalised and summed with the mirrored
        image's, normalised again, concatenated: 1024-d for cosine ranking."""
        primary, fine = self.ea.features(images)
        primary_f, fine_f = self.ea.features(images.flip(3))
        primary = F.normalize(F.normalize(primary) + F.normalize(primary_f))
        fine = F.normalize(F.normalize(fine) + F.normalize(fine_f))
        return torch.cat([primary, fine], 1)

    @torch.no_grad()
    def swap(self, appearance: torch.Tensor, structure: torch.Tensor) -> torch.Tensor:
        """``G(Es(gray(structure[i])), Ea(appearance[i]))``: appearance[i]'s identity in
        structure[i]'s pose and scene, B x 3 x H x W in the inputs' normalised space (the
        ``SwapsAppearance`` capability). Eval mode; the modules' modes are restored."""
        if appearance.shape != structure.shape:
            raise ReidError(f"swap needs appearance and structure batches of the same shape; "
                            f"got {tuple(appearance.shape)} and {tuple(structure.shape)}")
        networks = (self.ea, self.es, self.decoder)
        modes = [m.training for m in networks]
        for module in networks:
            module.eval()
        try:
            return self.decoder(self.es(to_gray(structure)), self.ea.encode(appearance))
        finally:
            for module, mode in zip(networks, modes, strict=True):
                module.train(mode)

    # -- frozen copies -------------------------------------------------------------------

    def frozen_ea(self) -> nn.Module:
        """Ea's frozen twin, refreshed in place (no gradient to its weights; gradients flow
        to its input, i.e. to G)."""
        if self._ea_frozen is None:
            self._ea_frozen = copy.deepcopy(self.ea).requires_grad_(False)
        _sync(self._ea_frozen, self.ea)
        return _bn_train(self._ea_frozen)

    def frozen_es(self) -> nn.Module:
        if self._es_frozen is None:
            self._es_frozen = copy.deepcopy(self.es).requires_grad_(False)
        _sync(self._es_frozen, self.es)
        return self._es_frozen.eval()

    # -- one iteration -------------------------------------------------------------------

    def training_step(self, batch: Batch, step: int,
                      optim: StepOptimizers) -> dict[str, torch.Tensor | float]:
        cfg, context = self.config, self.context
        weights = loss_weights(cfg, step)
        if self.teacher is None and weights["prim"] > 0:
            self.teacher = load_teacher(context, cfg.teacher, cfg.teacher_bn)
        x_a, l_a, xp_a = context.inputs(batch, "images", "pids", "positives")
        x_b, l_b, xp_b = context.inputs(batch, "second.images", "second.pids",
                                        "second.positives")
        for module in self.modules().values():
            module.train()
        out = self.forward(x_a, x_b, xp_a, xp_b)  # 1. forward

        loss_d, r1 = self.discriminator_loss(out)  # 2. discriminator update
        optim.update("discriminator", loss_d)

        with optim.frozen(self.discriminator):  # 3. generator update (Es + G, then Ea)
            terms = self.generator_terms(out, l_a, l_b, weights)
            total = self.total(terms, weights)
            optim.update(("generator", "ea"), total)

        if self._maybe_log_images(step, torch.cat([x_a, x_b])[:cfg.swap_images]):
            self._teacher_dropout = cfg.teacher_dropout == "after_first_grid"
        if self.teacher is not None:
            self.teacher.dropout = self._teacher_dropout
        p_a, p_b = out["p_a"].detach(), out["p_b"].detach()
        metrics: dict[str, torch.Tensor | float] = {
            "loss": total.detach(), "loss_d": loss_d.detach(), "r1": r1.detach(),
            "accuracy": torch.cat([p_a.argmax(1) == l_a, p_b.argmax(1) == l_b]).float().mean()}
        metrics.update({f"loss/{k}": v.detach() for k, v in terms.items()})
        metrics.update({f"weight/{k}": v for k, v in weights.items()})  # floats: no sync
        return metrics

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor, xp_a: torch.Tensor,
                xp_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Codes, the six generations and the identity logits of the erased real images.

        Ea's train-mode passes follow the official ``forward`` (every BatchNorm, the heads'
        included, sees each pass): the clean x_a, x_b, xp_a, xp_b through the whole Ea,
        then, when ``erasing > 0``, their erased copies (whose logits the ID losses use).
        Without erasing the clean passes' logits are the ID losses' (four passes, not eight)."""
        cfg, es, decoder = self.config, self.es, self.decoder
        with self.context.precision.autocast():
            s_a, s_b = es(to_gray(x_a)), es(to_gray(x_b))
            clean = [self._clean_pass(x) for x in (x_a, x_b, xp_a, xp_b)]
            (f_a, p_a, pf_a), (f_b, p_b, pf_b), (fp_a, pp_a, _), (fp_b, pp_b, _) = clean
            out = {"x_a": x_a, "x_b": x_b, "s_a": s_a, "s_b": s_b, "f_a": f_a, "f_b": f_b,
                   "x_ba": decoder(s_b, f_a), "x_ab": decoder(s_a, f_b),
                   "x_a_rec": decoder(s_a, f_a), "x_b_rec": decoder(s_b, f_b),
                   "xp_a_rec": decoder(s_a, fp_a), "xp_b_rec": decoder(s_b, fp_b),
                   "p_a": p_a, "pf_a": pf_a, "p_b": p_b, "pf_b": pf_b,
                   "pp_a": pp_a, "pp_b": pp_b}
            if cfg.erasing > 0:
                ea = self.ea
                _, out["p_a"], out["pf_a"] = ea(random_erasing(x_a, cfg.erasing))
                _, out["p_b"], out["pf_b"] = ea(random_erasing(x_b, cfg.erasing))
                out["pp_a"] = ea(random_erasing(xp_a, cfg.erasing))[1]
                out["pp_b"] = ea(random_erasing(xp_b, cfg.erasing))[1]
        return out

    def _clean_pass(self, images: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(code, primary, fine) of a clean image through the whole Ea; without gradient
        when the erased copies give the ID losses (the code is detached anyway)."""
        if self.config.erasing > 0:
            with torch.no_grad():
                return self.ea(images)
        return self.ea(images)

    def discriminator_loss(self, out: Mapping[str, torch.Tensor]
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """D's loss on the detached x_ba vs x_a and x_ab vs x_b, and its R1 part."""
        cfg = self.config
        with self.context.precision.autocast():
            d_a, r1_a = discriminator_loss(self.discriminator, out["x_ba"], out["x_a"], cfg.r1_w)
            d_b, r1_b = discriminator_loss(self.discriminator, out["x_ab"], out["x_b"], cfg.r1_w)
        return cfg.gan_w * (d_a + d_b), r1_a + r1_b

    def generator_terms(self, out: Mapping[str, torch.Tensor], l_a: torch.Tensor,
                        l_b: torch.Tensor, weights: Mapping[str, float]
                        ) -> dict[str, torch.Tensor]:
        """Every loss term of the generator update, unweighted (see the module docstring);
        computed inside ``optim.frozen(discriminator)`` so that D takes no gradient."""
        cfg, es, dis = self.config, self.es, self.discriminator
        x_a, x_b, s_a, s_b = out["x_a"], out["x_b"], out["s_a"], out["s_b"]
        x_ba, x_ab = out["x_ba"], out["x_ab"]
        x_ba_c, x_ab_c = x_ba.detach(), x_ab.detach()
        with self.context.precision.autocast():
            if random.uniform(0, 1) < cfg.encoder_again:  # Es learns, images fixed
                s_a_rec, s_b_rec = es(to_gray(x_ab_c)), es(to_gray(x_ba_c))
            else:  # Es fixed, G learns through the images
                frozen_es = self.frozen_es()
                s_a_rec, s_b_rec = frozen_es(to_gray(x_ab)), frozen_es(to_gray(x_ba))
            frozen_ea = self.frozen_ea()
            f_a_rec, p_a_rec, _ = frozen_ea(x_ba)
            f_b_rec, p_b_rec, _ = frozen_ea(x_ab)
            ce = F.cross_entropy
            terms = {
                "recon_x": l1(out["x_a_rec"], x_a) + l1(out["x_b_rec"], x_b),
                "recon_xp": l1(out["xp_a_rec"], x_a) + l1(out["xp_b_rec"], x_b),
                # both codes are detached (as the official code): logged, no gradient
                "recon_f": l1(f_a_rec, out["f_a"]) + l1(f_b_rec, out["f_b"]),
                "recon_s": l1(s_a_rec, s_a) + l1(s_b_rec, s_b),
                "id": ce(out["p_a"], l_a) + ce(out["p_b"], l_b),
                "id_fine": ce(out["pf_a"], l_a) + ce(out["pf_b"], l_b),
                "pid": ce(out["pp_a"], l_a) + ce(out["pp_b"], l_b),
                "recon_id": ce(p_a_rec, l_a) + ce(p_b_rec, l_b),
                "adv": generator_loss(dis, x_ba) + generator_loss(dis, x_ab),
            }
            zero = x_a.new_zeros(())
            terms["cycle"] = zero
            if weights["cycle"] > 0:
                terms["cycle"] = (l1(self.decoder(s_a_rec, f_a_rec), x_a)
                                  + l1(self.decoder(s_b_rec, f_b_rec), x_b))
            terms["teacher"], terms["fine"] = zero, zero
            if weights["prim"] > 0:
                if self.teacher is None:
                    self.teacher = load_teacher(self.context, cfg.teacher, cfg.teacher_bn)
                _, q_ba, qf_ba = self.ea(x_ba_c)
                _, q_ab, qf_ab = self.ea(x_ab_c)
                terms["teacher"] = (teacher_kl(q_ba, soft_label(self.teacher.logits, x_ba_c))
                                    + teacher_kl(q_ab, soft_label(self.teacher.logits, x_ab_c)))
                # fine-grained mining: the label of the STRUCTURE provider
                terms["fine"] = ce(qf_ba, l_b) + ce(qf_ab, l_a)
        return terms

    def total(self, terms: Mapping[str, torch.Tensor],
               weights: Mapping[str, float]) -> torch.Tensor:
        """The weighted sum (``configs/latest.yaml``): the fine head on real images and on
        generated ones both weigh ``fine_w * lambda_prim``."""
        cfg = self.config
        return (cfg.gan_w * terms["adv"]
                + cfg.recon_x_w * terms["recon_x"] + cfg.recon_xp_w * terms["recon_xp"]
                + weights["code"] * (terms["recon_f"] + terms["recon_s"])
                + weights["cycle"] * terms["cycle"]
                + cfg.id_w * (terms["id"] + weights["fine"] * terms["id_fine"])
                + cfg.pid_w * terms["pid"] + cfg.recon_id_w * terms["recon_id"]
                + weights["prim"] * (terms["teacher"] + cfg.fine_w * terms["fine"]))

    def _maybe_log_images(self, step: int, images: torch.Tensor) -> bool:
        """A swap grid every ``log_images_every`` iterations and after the last one;
        whether one was written."""
        context, every = self.context, self.config.log_images_every
        clock = context.clock
        last = clock.epoch == context.train.epochs - 1 and clock.index == clock.length - 1
        if not (last or (every and (step + 1) % every == 0)):
            return False
        rows = swap_rows(self.ea, self.es, self.decoder, images.detach(), self.normalize)
        context.log_images("swap", rows, step + 1, value_range=(0.0, 1.0),
                           limit=images.shape[0] + 1)
        return True


# --- contract example -----------------------------------------------------------------------


def recipe_example() -> dict[str, Any]:
    """A narrow DG-Net at 64x32: ResNet-18 trunk (code 512 x 4), Es dim 8, decoder 64."""
    return {"backbone": {"name": "timm", "model": "resnet18", "last_stride": 1,
                         "pooling": "max"},
            "generators": {"structure": {"name": "dgnet_structure_encoder", "dim": 8,
                                         "dilations": [1, 2, 3]},
                           "decoder": {"name": "dgnet_decoder", "dim": 64, "code_dim": 2048,
                                       "mlp_dim": 64},
                           "discriminator": {"name": "dgnet_discriminator", "dim": 8}},
            "loader": {"height": 64, "width": 32, "positive": True, "second_batch": True,
                       "erasing": 0.0, "sampler": "random"},
            "evaluate": {"name": "ranking", "metric": "cosine", "flip": False}}

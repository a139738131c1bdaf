"""The ``cut_reid`` method: Synth-ReID's CUT translation with a joint re-ID branch.

One training step (method notes A.7), with a labelled source batch ``x`` and an unlabelled
target batch ``y``:

1. G step (translator, PatchNCE heads, re-ID branch; the discriminator is frozen):
   ``fake = G(x)``; L_G = w_gen * LSGAN(D(fake), 1) + w_sim * FM(D_l(y), D_l(fake))
   + w_nce * NCE(x, fake) [+ w_idt * NCE(y, G(y))] + w_x * CE_ls(reid(enc(x)), pids)
   [+ w_t * triplet]. One backward, then the three optimizers step.
2. D step: L_D = w_dis * (LSGAN(D(y), 1) + LSGAN(D(fake.detach()), 0))
   + w_sim * FM(D_l(x), D_l(fake.detach())).
   With ``guide_gen = false`` the re-ID branch then trains on the detached encoder output.

``embed`` is the re-ID branch's BNNeck feature of the encoder's output, plus that of the
flipped image with ``eval_flip`` (a sum, as Synth-ReID; leave the evaluator's ``flip`` off).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from reidcore.engine.optim import Clock, ClockLR, Optimization
from reidcore.errors import ReidError
from reidcore.registry import Kind
from torch import nn

from reid_plugin_cut_reid.config import (
    CutReidConfig,
    PatchDiscriminatorConfig,
    PatchNCEConfig,
    ResnetGeneratorConfig,
)
from reid_plugin_cut_reid.losses import (
    PatchNCELoss,
    cross_entropy_label_smooth,
    feature_matching,
    lsgan,
)
from reid_plugin_cut_reid.networks import PatchDiscriminator, ReidBranch, ResnetGenerator

TRANSLATOR, DISCRIMINATOR = "translator", "discriminator"
DEFAULT_COMPONENTS = {TRANSLATOR: "resnet_generator", DISCRIMINATOR: "patch_discriminator"}


def epoch_multistep(optimizer: torch.optim.Optimizer, milestones: Sequence[int],
                    gamma: float, clock: Clock) -> ClockLR:
    """LR = initial LR * gamma^(number of milestones <= the current epoch), read from the
    engine's clock (stateless, like the core's schedules, so a resumed run matches)."""
    steps = list(milestones)
    return ClockLR(optimizer, lambda now: gamma ** sum(1 for m in steps if now.epoch >= m), clock)


def _requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def _build_network(context: Any, role: str) -> nn.Module:
    generators = getattr(context.recipe, "generators", None) or {}
    if role in generators:
        return context.build_generator(role)
    return context.registry.get(Kind.GENERATOR, DEFAULT_COMPONENTS[role]).create()


class CutReid:
    """A :class:`reidcore.interfaces.Method` (see the module docstring). Modules:
    ``translator`` (G), ``discriminator`` (D), ``nce`` (the PatchNCE heads) and ``reid``."""

    def __init__(self, config: CutReidConfig, context: Any):
        if getattr(context, "world_size", 1) > 1:
            raise ReidError("cut_reid trains in one process only (its G and D steps call "
                            "the encoder and decoder directly, which DDP does not wrap)")
        self.config = config
        self.context = context
        self.translator = _build_network(context, TRANSLATOR)
        self.discriminator = _build_network(context, DISCRIMINATOR)
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
            head_dim=config.head_dim, temperature=config.nce_temperature))
        self.reid = ReidBranch(g.feature_channels, max(int(context.num_classes), 1),
                               config.reid_layers, config.reid_width,
                               config.classifier_init)
        self._optimization: Optimization | None = None
        self._image_batch: dict[str, torch.Tensor] | None = None

    # -- the Method contract -----------------------------------------------------------------

    def modules(self) -> Mapping[str, nn.Module]:
        return {"translator": self.translator, "discriminator": self.discriminator,
                "nce": self.nce, "reid": self.reid}

    def configure_optimizers(self) -> Optimization:
        c, context = self.config, self.context
        betas = (c.beta1, c.beta2)

        def adam(name: str, module: nn.Module, beta2: float, decay: float) -> torch.optim.Adam:
            params = [p for p in module.parameters() if p.requires_grad]
            return torch.optim.Adam([{"params": params, "name": name, "lr": c.lr}], lr=c.lr,
                                    betas=(c.beta1, beta2), weight_decay=decay)

        optimizers = {
            "translator": adam("translator", self.translator, betas[1], c.weight_decay),
            "discriminator": adam("discriminator", self.discriminator, betas[1],
                                  c.weight_decay),
            "nce": adam("nce", self.nce, c.head_beta2, c.head_weight_decay),
            "reid": adam("reid", self.reid, betas[1], c.weight_decay),
        }
        if getattr(context, "clock", None) is None:
            context.clock = Clock(length=getattr(context, "steps_per_epoch", 1))
        schedulers = {name: epoch_multistep(opt, c.reid_milestones if name == "reid"
                                           else c.milestones, c.gamma, context.clock)
                      for name, opt in optimizers.items()}
        self._optimization = Optimization(optimizers, schedulers)
        return self._optimization

    def training_step(self, batch: Mapping[str, Any], step: int) -> dict[str, float]:
        if self._optimization is None:
            self.configure_optimizers()
        assert self._optimization is not None
        opt = self._optimization.optimizers
        c = self.config
        device = self.context.device
        precision = self.context.precision
        if "target" not in batch:
            raise ReidError("cut_reid needs unlabelled target images: add [[data.target]]")
        x = batch["images"].to(device, non_blocking=True)
        y = batch["target"]["images"].to(device, non_blocking=True)
        pids = torch.as_tensor(batch["pids"]).to(device, non_blocking=True).long()
        g, d = self.translator, self.discriminator
        layers = [*self.nce_layers, self.feature_layer]

        # 1. G step: translator, NCE heads and re-ID branch; D frozen
        _requires_grad(d, False)
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
            total = c.weight_gen * loss_gen + c.weight_sim * loss_sim + c.weight_nce * loss_nce
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
        for name in ("translator", "nce", "reid"):
            opt[name].zero_grad(set_to_none=True)
        precision.backward(total)
        for name in ("translator", "nce") + (("reid",) if c.guide_gen else ()):
            precision.step(opt[name])
        _requires_grad(d, True)
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
        opt["discriminator"].zero_grad(set_to_none=True)
        precision.backward(loss_d)
        precision.step(opt["discriminator"])
        metrics.update({"loss/d_real": loss_d_real, "loss/d_fake": loss_d_fake,
                        "loss/d_sim": loss_d_sim, "loss/discriminator": loss_d})

        # re-ID branch on its own (guide_gen = false): detached encoder features
        if not c.guide_gen:
            with precision.autocast():
                reid_total, reid_metrics = self._reid_loss(reid_input.detach(), pids)
            opt["reid"].zero_grad(set_to_none=True)
            precision.backward(reid_total)
            precision.step(opt["reid"])
            metrics.update(reid_metrics)

        metrics["loss"] = metrics["loss/generator"] + metrics["loss/discriminator"]
        self._image_batch = {"source": x[:8].detach(), "translated": fake_detached[:8],
                             "target": y[:8].detach()}
        self._maybe_log_images(step)
        return {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
                for k, v in metrics.items()}

    def _reid_loss(self, code: torch.Tensor, pids: torch.Tensor
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        out = self.reid(code)
        loss_x = cross_entropy_label_smooth(out["logits"], pids, c.label_smoothing)
        total = c.weight_x * loss_x
        metrics = {"loss/reid_ce": loss_x,
                   "accuracy": (out["logits"].detach().argmax(1) == pids).float().mean()}
        if c.weight_t > 0:
            from reidcore.losses.losses import batch_hard_triplet

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

    def _maybe_log_images(self, step: int) -> None:
        every = self.config.log_images_every
        if not every or self._image_batch is None:
            return
        from reid_plugin_cut_reid.plugin import current_run_dir

        run_dir = current_run_dir()
        steps = max(int(getattr(self.context, "steps_per_epoch", 1)), 1)
        epoch_done = (step + 1) // steps
        last_of_epoch = (step + 1) % steps == 0
        epochs = self.context.recipe.train.epochs if hasattr(self.context, "recipe") else 0
        if run_dir is None or not last_of_epoch or not (
                epoch_done % every == 0 or epoch_done == epochs):
            return
        save_translation_grid(self._image_batch, Path(run_dir) / "translations"
                              / f"epoch_{epoch_done:03d}.png")


def save_translation_grid(images: Mapping[str, torch.Tensor], path: Path) -> Path:
    """Rows of source / translated / target images (from [-1, 1]) saved as one PNG."""
    from torchvision.utils import save_image

    rows = [images[k].float().cpu() for k in ("source", "translated", "target") if k in images]
    n = min(r.shape[0] for r in rows)
    grid = torch.cat([r[:n] for r in rows]).clamp(-1, 1) * 0.5 + 0.5
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path, nrow=n, padding=2)
    return path


def build(config: CutReidConfig, *, context: Any) -> CutReid:
    return CutReid(config, context)


# --- contract example -----------------------------------------------------------------------


class _ExampleRegistry:
    """Small networks under the default names, so the contract check stays fast."""

    def get(self, kind: Any, name: str) -> Any:
        from reidcore.registry import ComponentSpec

        if name == DEFAULT_COMPONENTS[TRANSLATOR]:
            return ComponentSpec(name=name, kind="generator", config=ResnetGeneratorConfig,
                                 build=lambda _c: ResnetGenerator(
                                     ResnetGeneratorConfig(ngf=8, blocks=2)))
        return ComponentSpec(name=name, kind="generator", config=PatchDiscriminatorConfig,
                             build=lambda _c: PatchDiscriminator(PatchDiscriminatorConfig(ndf=8)))


def method_example() -> dict[str, Any]:
    """The build context for the contract check: a small translator and discriminator,
    4 identities, CPU."""
    from types import SimpleNamespace

    from reidcore.engine.context import MethodContext

    recipe = SimpleNamespace(generators={}, train=SimpleNamespace(epochs=1))
    context = MethodContext(recipe=recipe, registry=_ExampleRegistry(), num_classes=4)
    return {"context": context}

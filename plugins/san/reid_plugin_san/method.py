"""The ``san`` method: SA-Enc trained for re-ID jointly with SA-Dec regressing textures.

One training step (the official ``main.py``'s two updates, made valid in current PyTorch):

1. one forward of SA-Enc: logits, v and the four stage maps; SA-Dec decodes the maps;
2. the re-ID loss L_reID (``[[losses]]``, default CE_ls + batch-hard triplet on v) and the
   decoder-side loss L_dec = w_rec L_Rec + w_tr L_TR are differentiated SEPARATELY, both at
   the weights of the forward: grad(L_reID) w.r.t. every SA-Enc parameter, grad(L_dec)
   w.r.t. the trunk and SA-Dec (fc and classifier frozen: they get no decoder-side step);
3. the main optimizer (the warm-up Adam, then Adam-amsgrad) steps SA-Enc with the re-ID
   gradients; then the encoder-side Adam (lr 1e-5, betas (0.5, 0.999)) steps the trunk and
   the decoder Adam (same settings) steps SA-Dec with the decoder-side gradients.

Step 2 and 3 are the step optimizers' two halves: ``optim.backward(main, L_reID,
retain_graph=True)`` and ``optim.backward(("encoder_texture", "decoder"), L_dec)`` keep the
two gradients aside, ``optim.step(main)`` and ``optim.step("encoder_texture", "decoder")``
put each in place and step (precision, DDP averaging and clipping are the engine's).

The official code instead steps after ``loss.backward(retain_graph=True)`` and then
back-propagates the decoder loss through a graph whose weights were changed in place, which
current PyTorch rejects; computing both gradients before any step is the faithful
well-defined version (README, deviations).

``embed`` is v (512-d, eval-mode BN + ReLU) of SA-Enc alone: SA-Dec is never run at
inference and is not part of :meth:`San.inference_network`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from reidcore.api import (
    Kind,
    MethodContext,
    Optimization,
    ReidError,
    StepOptimizers,
    keep_rng_states,
)
from torch import nn

from reid_plugin_san.commands import dataset_options, repaired
from reid_plugin_san.common import (
    check_pairing,
    epoch_multistep,
    estimate_texture,
    maybe_log_images,
    to_tanh_range,
)
from reid_plugin_san.config import SanConfig
from reid_plugin_san.networks import SAEncoder
from reid_plugin_san.textures import TextureFolder, san_pg_decoder, write_textures

DEFAULT_REID_LOSSES = [("cross_entropy", 1.0, {"label_smoothing": 0.1}),
                       ("triplet", 1.0, {"margin": 0.3})]


class San:
    """A ``reidcore.api.Method``: modules ``encoder`` (SA-Enc) and ``decoder`` (SA-Dec)."""

    def __init__(self, config: SanConfig, context: MethodContext):
        self.config = config
        self.context = context
        loader = context.recipe.loader
        self.encoder = SAEncoder(context.build_backbone(default="timm"), context.num_classes,
                                 config.embedding_dim)
        self.decoder = None
        if config.decoder:
            self.decoder = check_pairing(context.build_generator("decoder"),
                                         self.encoder.trunk)
            self.rec = context.build_loss("texture_l1")
            self.tr = context.build_loss("texture_triplet", instances=loader.instances,
                                         margin=config.tr_margin)
        self.reid_losses = context.build_losses(config.embedding_dim,
                                                default=DEFAULT_REID_LOSSES)
        self.texture_size = (loader.texture_height, loader.texture_width)
        self._textures: TextureFolder | None = None
        if self.decoder is not None:
            # the EstimatesTexture capability only when there is a decoder to estimate with
            # (method.decoder = false has none, and the core checks by attribute)
            self.estimate_texture = self._estimate_texture

    # -- the Method contract -----------------------------------------------------------------

    def modules(self) -> Mapping[str, nn.Module]:
        modules: dict[str, nn.Module] = {"encoder": self.encoder}
        if self.decoder is not None:
            modules["decoder"] = self.decoder
        if any(True for _ in self.reid_losses.parameters()):
            modules["losses"] = self.reid_losses
        return modules

    def inference_network(self) -> nn.Module:
        """What is deployed: SA-Enc alone (eval mode gives v); SA-Dec is training-only."""
        return self.encoder

    def configure_optimizers(self) -> Optimization:
        c, context = self.config, self.context
        groups: dict[str, Any] = {"encoder": list(self.encoder.parameters())}
        extra = [p for p in self.reid_losses.parameters() if p.requires_grad]
        if extra:
            groups["losses"] = extra

        def adam(lr: float, amsgrad: bool) -> torch.optim.Optimizer:
            return context.make_optimizer(groups, kind="adam", lr=lr, betas=(c.beta1, c.beta2),
                                          weight_decay=c.weight_decay, amsgrad=amsgrad)

        warmup_epochs = c.warmup_epochs
        last = max(warmup_epochs - 1, 0)
        optimizers = {"main": adam(c.lr, c.amsgrad)}
        schedulers: dict[str, Any] = {
            "main": epoch_multistep(context, optimizers["main"], c.milestones, c.gamma,
                                    start=warmup_epochs)}
        if warmup_epochs:
            optimizers["warmup"] = adam(c.warmup_lr, False)
            schedulers["warmup"] = context.schedule(
                optimizers["warmup"],
                lambda now: c.warmup_growth ** min(max(now.epoch, 0), last))
        if self.decoder is not None:
            options = {"kind": "adam", "lr": c.decoder_lr,
                       "betas": (c.decoder_beta1, c.decoder_beta2), "weight_decay": 0.0}
            optimizers["encoder_texture"] = context.make_optimizer(
                {"trunk": list(self.encoder.trunk_parameters())}, **options)
            optimizers["decoder"] = context.make_optimizer(
                {"decoder": list(self.decoder.parameters())}, **options)
        return Optimization(optimizers, schedulers)

    def forward_losses(self, batch: Mapping[str, Any]
                       ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, Any]]:
        """One forward: (L_reID, L_dec or None, metrics and outputs for logging)."""
        c, context = self.config, self.context
        images, pids = context.inputs(batch, "images", "pids")
        pids = pids.long()
        with context.precision.autocast():
            out = self.encoder(images)
            reid_total, parts = self.reid_losses(out, {"pids": pids})
            info: dict[str, Any] = {f"loss/{name}": value for name, value in parts.items()}
            info["accuracy"] = (out["logits"].detach().argmax(1) == pids).float().mean()
            dec_total = None
            if self.decoder is not None:
                target = self.targets(batch)
                decoded = self.decoder(*out["maps"], size=self.texture_size)
                outputs = {"texture": decoded["texture"], "decoder_maps": decoded["maps"]}
                rec = self.rec(outputs, {"textures": target})
                tr = self.tr(outputs, {"pids": pids})
                dec_total = c.weight_rec * rec + c.weight_tr * tr
                info.update({"loss/rec": rec, "loss/tr": tr, "loss/decoder": dec_total,
                             "_rows": {"image": to_tanh_range(images.detach(),
                                                              context.recipe.loader.normalize),
                                       "target": target, "decoded": decoded["texture"]}})
        return reid_total, dec_total, info

    def training_step(self, batch: Mapping[str, Any], step: int,
                      optim: StepOptimizers) -> dict[str, torch.Tensor]:
        context = self.context
        self.encoder.train()
        if self.decoder is not None:
            self.decoder.train()
        reid_total, dec_total, info = self.forward_losses(batch)
        # both gradients at the forward's weights, before any step: L_reID w.r.t. SA-Enc
        # (the warm-up Adam's or the main amsgrad Adam's parameters), L_dec w.r.t. the trunk
        # (fc, classifier frozen) and SA-Dec
        main = "warmup" if context.clock.epoch < self.config.warmup_epochs else "main"
        optim.backward(main, reid_total, retain_graph=dec_total is not None)
        if dec_total is not None:
            optim.backward(("encoder_texture", "decoder"), dec_total)
        # (1) the re-ID update of SA-Enc; (2) the decoder-side update, constant LR
        optim.step(main)
        if dec_total is not None:
            optim.step("encoder_texture", "decoder")

        rows = info.pop("_rows", None)
        if rows is not None:
            maybe_log_images(context, self.config.log_images_every, step, rows)
        info["loss/reid"] = reid_total
        info["loss"] = reid_total + dec_total if dec_total is not None else reid_total
        return {key: value.detach() for key, value in info.items()}

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        was = self.encoder.training
        self.encoder.eval()
        try:
            return self.encoder(images)
        finally:
            self.encoder.train(was)

    def _estimate_texture(self, images: torch.Tensor) -> torch.Tensor:
        """``EstimatesTexture`` (``common.estimate_texture``): SA-Dec's texture of SA-Enc's
        maps, both in eval mode, as SAN's decoder would be applied after training."""
        assert self.decoder is not None
        return estimate_texture(self.encoder, self.encoder.trunk, self.decoder, images,
                                self.texture_size)

    # -- texture targets ---------------------------------------------------------------------

    def targets(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The step's texture targets, B x 3 x th x tw in [-1, 1]."""
        if self.config.textures == "dataset":
            if "textures" not in batch:
                raise ReidError("san with textures = \"dataset\" needs loader.textures = true "
                                "(and a dataset whose records carry extras['texture']); or "
                                "set method.textures = \"folder\" / \"san_pg\"")
            (target,) = self.context.inputs(batch, "textures")
            return target
        folder = self.texture_folder()
        return folder.load(batch["paths"], self.texture_size).to(self.context.device)

    def texture_folder(self) -> TextureFolder:
        """The texture folder, made ready at the first step that needs it (written with
        SAN-PG when ``textures = "san_pg"``) without drawing from the global RNGs: an
        uninterrupted run does this in its first epoch, a resumed one in its first
        resumed step, and both must go on with the same random stream."""
        if self._textures is None:
            with keep_rng_states():  # a resumed run must draw as an uninterrupted one
                self._textures = self._open_texture_folder()
        return self._textures

    def _open_texture_folder(self) -> TextureFolder:
        c = self.config
        if c.textures == "folder":
            if not c.texture_root:
                raise ReidError("san: textures = \"folder\" needs method.texture_root, a "
                                "folder written by `reid san-textures`")
            return TextureFolder(c.texture_root, self._make_hint(c.texture_root))
        return TextureFolder(self.write_pseudo_textures())

    def _make_hint(self, folder: str) -> str:
        """How to make the texture folder of this recipe's training data."""
        import shlex

        from reid_plugin_san.commands import dataset_options

        source = self.context.recipe.data.source
        if len(source) != 1:
            return "`reid san-textures` once per dataset (see its --help)"
        words = ["reid", "san-textures", "SAN_PG_RUN", "--dataset", source[0].name]
        for key, text in dataset_options(source[0].config).items():
            words += ["--option", f"{key}={text}"]
        words += ["--out", str(Path(folder).expanduser().resolve())]
        return f"`{shlex.join(words)}` (SAN_PG_RUN: your trained san_pg run)"

    def write_pseudo_textures(self) -> Path:
        """``textures = "san_pg"``: write (or complete) the pseudo textures of every
        training image with the SAN-PG run; the first process writes, the others wait."""
        c, context = self.config, self.context
        if c.texture_root:
            out = Path(c.texture_root).expanduser()
        elif context.run_dir is not None:
            out = Path(context.run_dir) / "textures"
        else:
            raise ReidError("san: textures = \"san_pg\" outside a run needs "
                            "method.texture_root (where to write the textures)")
        if context.rank == 0:
            loaded = context.load_run(c.san_pg, modules=["backbone", "decoder"])
            decode, sizes = san_pg_decoder(loaded)
            if tuple(sizes["texture_size"]) != tuple(self.texture_size):
                self._say(f"san: SAN-PG writes {list(sizes['texture_size'])} textures; they "
                          f"are resized to this recipe's {list(self.texture_size)}")
            images, names = [], []
            for section in context.recipe.data.source:
                spec = context.registry.get(Kind.DATASET, section.name)
                images += [r.path for r in spec.create(section.config).load().train]
                names.append(section.name)
            identity = {**sizes.pop("identity"), "dataset": "+".join(names)}
            if len(names) == 1:  # as `reid san-textures` records it: its command repairs it
                identity["dataset_options"] = dataset_options(context.recipe.data.source[0]
                                                              .config)
            manifest = write_textures(decode, images, out, identity=identity,
                                      device=context.device, desc="san_pg textures", **sizes)
            self._say(f"san: pseudo textures of {manifest['images']} training images in {out} "
                      f"({manifest['written']} written{repaired(manifest)}, "
                      f"{manifest['skipped']} already there, verified)")
        if context.world_size > 1:
            import torch.distributed as dist

            dist.barrier()
        return out

    def _say(self, message: str) -> None:
        """A line in the run's log (silent in quiet runs and outside a run)."""
        logger = self.context.logger
        if logger is not None and hasattr(logger, "print"):
            logger.print(message)


def recipe_example() -> dict[str, Any]:
    """The contract check's recipe: ResNet-18 encoder, small decoder, true textures; the
    checked step is in the warm-up (the default 20 epochs), so ``main`` does not step."""
    return {
        "reid:no_gradient": {"main": "the warm-up Adam steps SA-Enc in the first "
                                     "warmup_epochs epochs; the main amsgrad Adam after"},
        "method": {"embedding_dim": 32},
        "backbone": {"name": "timm", "model": "resnet18", "last_stride": 1},
        "generators": {"decoder": {"name": "sa_decoder", "encoder_channels": [64, 128, 256, 512],
                                   "widths": [32, 16, 8, 8, 4]}},
        "data": {"source": [{"name": "synthetic", "size": "64x32"}]},
        "loader": {"height": 64, "width": 32, "identities": 2, "instances": 4,
                   "textures": True, "texture_height": 64, "texture_width": 64},
    }

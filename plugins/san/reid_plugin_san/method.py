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
from reidcore.api import ClockLR, Kind, MethodContext, Optimization, ReidError
from torch import nn

from reid_plugin_san.common import (
    check_pairing,
    ensure_clock,
    epoch_multistep,
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
            self.decoder = check_pairing(context.build_generator("decoder", "sa_decoder"),
                                         self.encoder.trunk)
            self.rec = context.build_loss("texture_l1")
            self.tr = context.build_loss("texture_triplet", instances=loader.instances,
                                         margin=config.tr_margin)
        self.reid_losses = context.build_losses(config.embedding_dim,
                                                default=DEFAULT_REID_LOSSES)
        self.texture_size = (loader.texture_height, loader.texture_width)
        self._textures: TextureFolder | None = None
        self._optimization: Optimization | None = None

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
        c = self.config
        clock = ensure_clock(self.context)
        encoder = [p for p in self.encoder.parameters() if p.requires_grad]
        extra = [p for p in self.reid_losses.parameters() if p.requires_grad]
        groups = [{"params": encoder, "name": "encoder"}]
        if extra:
            groups.append({"params": extra, "name": "losses"})

        def adam(lr: float, amsgrad: bool) -> torch.optim.Adam:
            return torch.optim.Adam([dict(g) for g in groups], lr=lr, betas=(c.beta1, c.beta2),
                                    weight_decay=c.weight_decay, amsgrad=amsgrad)

        warmup_epochs = c.warmup_epochs
        last = max(warmup_epochs - 1, 0)
        optimizers = {"main": adam(c.lr, c.amsgrad)}
        schedulers: dict[str, Any] = {
            "main": epoch_multistep(optimizers["main"], c.milestones, c.gamma, clock,
                                    start=warmup_epochs)}
        if warmup_epochs:
            optimizers["warmup"] = adam(c.warmup_lr, False)
            schedulers["warmup"] = ClockLR(
                optimizers["warmup"],
                lambda now: c.warmup_growth ** min(max(now.epoch, 0), last), clock)
        if self.decoder is not None:
            betas = (c.decoder_beta1, c.decoder_beta2)
            trunk = [p for p in self.encoder.trunk_parameters() if p.requires_grad]
            optimizers["encoder_texture"] = torch.optim.Adam(
                [{"params": trunk, "name": "trunk"}], lr=c.decoder_lr, betas=betas)
            optimizers["decoder"] = torch.optim.Adam(
                [{"params": list(self.decoder.parameters()), "name": "decoder"}],
                lr=c.decoder_lr, betas=betas)
        self._optimization = Optimization(optimizers, schedulers)
        return self._optimization

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

    def gradients(self, reid_total: torch.Tensor, dec_total: torch.Tensor | None
                  ) -> tuple[dict[nn.Parameter, torch.Tensor | None],
                             dict[nn.Parameter, torch.Tensor | None]]:
        """The two gradients of one forward, before any step: L_reID w.r.t. SA-Enc (and
        any loss parameters); L_dec w.r.t. the trunk and SA-Dec (fc, classifier frozen)."""
        scaler = self.context.precision.scaler
        scale = scaler.scale if scaler is not None else (lambda loss: loss)
        reid_params = [p for p in (*self.encoder.parameters(), *self.reid_losses.parameters())
                       if p.requires_grad]
        grads = torch.autograd.grad(scale(reid_total), reid_params,
                                    retain_graph=dec_total is not None, allow_unused=True)
        reid = dict(zip(reid_params, grads, strict=True))
        texture: dict[nn.Parameter, torch.Tensor | None] = {}
        if dec_total is not None and self.decoder is not None:
            dec_params = [p for p in (*self.encoder.trunk_parameters(),
                                      *self.decoder.parameters()) if p.requires_grad]
            grads = torch.autograd.grad(scale(dec_total), dec_params, allow_unused=True)
            texture = dict(zip(dec_params, grads, strict=True))
        return reid, texture

    def training_step(self, batch: Mapping[str, Any], step: int) -> dict[str, float]:
        if self._optimization is None:
            self.configure_optimizers()
        assert self._optimization is not None
        opt = self._optimization.optimizers
        context, precision = self.context, self.context.precision
        epoch = ensure_clock(context).epoch
        self.encoder.train()
        if self.decoder is not None:
            self.decoder.train()
        reid_total, dec_total, info = self.forward_losses(batch)
        reid, texture = self.gradients(reid_total, dec_total)

        # (1) re-ID update of SA-Enc: the warm-up Adam, then the main amsgrad Adam
        main = opt["warmup"] if epoch < self.config.warmup_epochs else opt["main"]
        self._set_grads(reid)
        context.sync_gradients(self.encoder, self.reid_losses)
        precision.step(main)
        # (2) decoder-side update: trunk (fc, classifier frozen) and SA-Dec, constant LR
        if texture:
            self._set_grads(texture)
            context.sync_gradients(self.encoder.backbone, self.decoder)
            precision.step(opt["encoder_texture"])
            precision.step(opt["decoder"])
        self._set_grads({})

        rows = info.pop("_rows", None)
        if rows is not None:
            maybe_log_images(context, self.config.log_images_every, step, rows)
        info["loss/reid"] = reid_total
        info["loss"] = reid_total + (dec_total if dec_total is not None else 0.0)
        return {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
                for k, v in info.items()}

    def _set_grads(self, grads: Mapping[nn.Parameter, torch.Tensor | None]) -> None:
        """Every parameter's ``.grad`` = its entry in ``grads`` (None elsewhere)."""
        for module in self.modules().values():
            for param in module.parameters():
                param.grad = None
        for param, grad in grads.items():
            param.grad = grad

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        was = self.encoder.training
        self.encoder.eval()
        try:
            return self.encoder(images)
        finally:
            self.encoder.train(was)

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
        if self._textures is None:
            c = self.config
            source = self.context.recipe.data.source
            dataset = source[0].name if source else "DATASET"
            if c.textures == "folder":
                if not c.texture_root:
                    raise ReidError("san: textures = \"folder\" needs method.texture_root, a "
                                    "folder written by `reid san-textures`")
                self._textures = TextureFolder(c.texture_root, dataset)
            else:
                self._textures = TextureFolder(self.write_pseudo_textures(), dataset)
        return self._textures

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
            manifest = write_textures(decode, images, out, identity=identity,
                                      device=context.device, desc="san_pg textures", **sizes)
            self._say(f"san: pseudo textures of {manifest['images']} training images in {out} "
                      f"({manifest['written']} written, {manifest['skipped']} already there)")
        if context.world_size > 1:
            import torch.distributed as dist

            dist.barrier()
        return out

    def _say(self, message: str) -> None:
        """A line in the run's log (silent in quiet runs and outside a run)."""
        logger = self.context.logger
        if logger is not None and hasattr(logger, "print"):
            logger.print(message)


def build(config: SanConfig, *, context: MethodContext) -> San:
    return San(config, context)


def recipe_example() -> dict[str, Any]:
    """The contract check's recipe: ResNet-18 encoder, small decoder, true textures."""
    return {
        "method": {"embedding_dim": 32},
        "backbone": {"name": "timm", "model": "resnet18", "last_stride": 1},
        "generators": {"decoder": {"name": "sa_decoder", "encoder_channels": [64, 128, 256, 512],
                                   "widths": [32, 16, 8, 8, 4]}},
        "data": {"source": [{"name": "synthetic", "size": "64x32"}]},
        "loader": {"height": 64, "width": 32, "identities": 2, "instances": 4,
                   "textures": True, "texture_height": 64, "texture_width": 64},
    }

"""The ``arn`` method: one step on a labelled source batch x and an unlabelled target batch y.

As the official code (method notes B.2-B.3)::

    e_c(x), e_s(x) = E_C(E_I(x)), E_S(E_I(x));   e_c(y), e_t(y) = E_C(E_I(y)), E_T(E_I(y))
    L = w_cls CE(C_S(pool e_c(x)), pids)                        source only
      + w_rec [rec(D(e_c(x) + e_s(x)), x) + rec(D(e_c(y) + e_t(y)), y)]
      + w_dif [dif(pool e_c(x), pool e_s(x)) + dif(pool e_c(y), pool e_t(y))]
      + w_mmd MMD(pool e_c(y), pool e_c(x))
      + w_ctr contrastive(pool e_c(x), pids)                    source only

one backward, one step of the one optimizer over all parameters (``optim.update("sgd",
total)``: the engine's zero_grad, backward, gradient sync, clipping and step; the
optimizer is ``[train]``'s, SGD in the adaptation recipes as the code). The target batch's
labels are never
read (the core's loader does not even deliver them). Each domain's batch goes through
the networks in its own forward call, as the code, so batch-norm statistics are per domain,
and in the code's order (target, then source; each encoded, then decoded); the code runs
each stage-4 encoder twice per batch, which the network reproduces in the running
statistics (``ArnNetwork.follow_official_passes``). Logged beside the losses: the mean L2
norm of the pooled shared and private features (``features/*``), where a collapse shows.

``source_only = true`` is the pretraining stage (the code needs a pretrained checkpoint
of the same architecture whose origin is undocumented): CE (+ w_ctr x contrastive) on
the source through E_I, E_C and the classifier. An adaptation run copies that stage's
network (every tensor but the classifier, as the code) from ``[requires.<pretrained>]``.
With ``identity_pose_network`` the pose encoder plays the private part for both domains.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from reidcore.api import (
    MethodContext,
    Optimization,
    ReidError,
    StepOptimizers,
    weight_loading_enabled,
)
from torch import nn

from reid_plugin_arn.config import ArnConfig
from reid_plugin_arn.networks import Classifier

NETWORK = "network"
TRAINED_BY_PRETRAINING = ("trunk.", "shared.")
"""The parameters source-only pretraining trains: they must come from the pretrained run."""


class Arn:
    """A ``Method`` (``reidcore.api.Method``); modules ``network`` and ``classifier``."""

    def __init__(self, config: ArnConfig, context: MethodContext):
        self.config = config
        self.context = context
        self.net = context.build_generator(NETWORK)
        needs = ("encode", "decode", "embed", "pool", "feature_dim", "has_private")
        missing = [name for name in needs if not hasattr(self.net, name)]
        if missing:
            raise ReidError(f"arn's [generators.{NETWORK}] must provide {', '.join(needs)} "
                            f"(arn_network or identity_pose_network); "
                            f"{type(self.net).__name__} has no {', '.join(missing)}")
        self.classifier = Classifier(self.net.feature_dim, max(int(context.num_classes), 1),
                                     config.dropout)
        self.loss_cls = context.build_loss("cross_entropy", label_smoothing=0.0)
        self.loss_rec = context.build_loss("arn_reconstruction")
        self.loss_dif = context.build_loss("arn_difference", form=config.difference)
        self.loss_mmd = context.build_loss("mmd", sigmas=list(config.sigmas))
        self.loss_ctr = context.build_loss("arn_contrastive", margin=config.margin,
                                           squared=config.contrastive == "squared")
        self.pretrained_from: str | None = None
        if not config.source_only and hasattr(self.net, "follow_official_passes"):
            self.net.follow_official_passes()
        if config.pretrained and not config.source_only and not context.meta \
                and weight_loading_enabled():
            self._load_pretrained(config.pretrained)
        if config.private_init == "shared" and not config.source_only:
            self.net.copy_shared_to_private()

    # -- pretrained stage ----------------------------------------------------------------------

    def _load_pretrained(self, ref: str) -> None:
        """Copy the pretrained run's network into this one. E_I and E_C (what pretraining
        trains) must match exactly; the other parts are copied where the run has them with
        the same shapes (e.g. an ablation without private encoders skips E_S / E_T)."""
        loaded = self.context.load_run(ref, modules=[NETWORK])
        theirs = loaded[NETWORK].state_dict()
        own = self.net.state_dict()
        state = {k: v for k, v in theirs.items()
                 if k in own and tuple(v.shape) == tuple(own[k].shape)}
        needed = [k for k in own if k.startswith(TRAINED_BY_PRETRAINING)]
        wrong = [k for k in needed if k not in state]
        if wrong:
            raise ReidError(f"the pretrained run {loaded.run_dir} does not fit this network: "
                            f"{len(wrong)} tensors of E_I / E_C are missing or shaped "
                            f"differently (e.g. {', '.join(wrong[:3])}); its "
                            f"[generators.network] must be this recipe's")
        self.net.load_state_dict({**own, **state}, strict=True)
        self.pretrained_from = str(loaded.checkpoint)

    # -- the Method contract -------------------------------------------------------------------

    def modules(self) -> Mapping[str, nn.Module]:
        return {NETWORK: self.net, "classifier": self.classifier}

    def trained_parameters(self) -> dict[str, list[nn.Parameter]]:
        """All parameters (the code's single SGD), or in the source-only stage those it
        trains: E_I, E_C and the classifier."""
        if self.config.source_only:
            network = [p for name, p in self.net.named_parameters()
                       if name.startswith(TRAINED_BY_PRETRAINING)]
        else:
            network = list(self.net.parameters())
        return {NETWORK: network, "classifier": list(self.classifier.parameters())}

    def configure_optimizers(self) -> Optimization:
        """One optimizer over :meth:`trained_parameters` (groups ``network``, ``classifier``)
        with the ``[train]`` settings and schedule."""
        optimizer = self.context.make_optimizer(self.trained_parameters())
        return Optimization({"sgd": optimizer}, {"sgd": self.context.make_scheduler(optimizer)})

    def training_step(self, batch: Mapping[str, Any], step: int,
                      optim: StepOptimizers) -> dict[str, torch.Tensor]:
        with self.context.precision.autocast():
            total, metrics, rows = self.losses(batch)
        optim.update("sgd", total)
        metrics["loss"] = total
        if rows:
            self._maybe_log_images(step, rows)
        return {k: v.detach() for k, v in metrics.items()}

    def losses(self, batch: Mapping[str, Any]
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The weighted total, its parts, and image rows for logging (module docstring).
        The target batch goes through the networks first, then the source batch, each
        encoded then decoded: the official iteration's order, which the batch-norm running
        statistics depend on."""
        c, context, net = self.config, self.context, self.net
        x, pids = context.inputs(batch, "images", "pids")
        labels = {"pids": pids.long()}
        if c.source_only:
            return (*self._classification(net.pool(net.shared(net.trunk(x))), labels), {})
        (y,) = context.inputs(batch, "target.images")
        shared_y, private_y = net.encode(y, "target")
        rec_y = net.decode(shared_y, private_y) if c.w_rec > 0 else None
        shared_x, private_x = net.encode(x, "source")
        rec_x = net.decode(shared_x, private_x) if c.w_rec > 0 else None
        f_x, f_y = net.pool(shared_x), net.pool(shared_y)
        total, metrics = self._classification(f_x, labels)
        metrics["features/shared_norm"] = torch.cat([f_x, f_y]).detach().norm(dim=1).mean()
        rows: dict[str, torch.Tensor] = {}
        if rec_x is not None and rec_y is not None:
            metrics["loss/rec"] = (self.loss_rec({"reconstruction": rec_x, "images": x}, {})
                                   + self.loss_rec({"reconstruction": rec_y, "images": y}, {}))
            total = total + c.w_rec * metrics["loss/rec"]
            rows = {"source": x, "source_rec": rec_x.detach(), "target": y,
                    "target_rec": rec_y.detach()}
        if private_x is not None and private_y is not None:
            p_x, p_y = net.pool(private_x), net.pool(private_y)
            metrics["features/private_norm"] = torch.cat([p_x, p_y]).detach().norm(dim=1).mean()
            if c.w_dif > 0:
                metrics["loss/dif"] = (self.loss_dif({"shared": f_x, "private": p_x}, {})
                                       + self.loss_dif({"shared": f_y, "private": p_y}, {}))
                total = total + c.w_dif * metrics["loss/dif"]
        if c.w_mmd > 0:
            metrics["loss/mmd"] = self.loss_mmd({"target_features": f_y,
                                                 "source_features": f_x}, {})
            total = total + c.w_mmd * metrics["loss/mmd"]
        return total, metrics, rows

    def _classification(self, f_x: torch.Tensor, labels: dict[str, torch.Tensor]
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """w_cls x CE (+ w_ctr x contrastive) on the pooled shared source features."""
        c = self.config
        logits = self.classifier(f_x)
        loss_cls = self.loss_cls({"logits": logits}, labels)
        metrics: dict[str, torch.Tensor] = {
            "loss/cls": loss_cls,
            "accuracy": (logits.detach().argmax(1) == labels["pids"]).float().mean()}
        total = c.w_cls * loss_cls
        if c.w_ctr > 0:
            metrics["loss/ctr"] = self.loss_ctr({"features": f_x}, labels)
            total = total + c.w_ctr * metrics["loss/ctr"]
        return total, metrics

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The test feature: the pooled E_C(E_I(x)) (2048-d for ResNet-50)."""
        return self.net.embed(images)

    # -- extras --------------------------------------------------------------------------------

    def _maybe_log_images(self, step: int, rows: Mapping[str, torch.Tensor]) -> None:
        """At the end of every ``log_images_every``-th epoch (and of the last one): source,
        its reconstruction, target, its reconstruction (``images/reconstructions``)."""
        if self.context.clock.ends_epoch(self.config.log_images_every,
                                         self.context.recipe.train.epochs):
            self.context.log_images("reconstructions", rows, step + 1)


# --- contract example -----------------------------------------------------------------------


TINY_NETWORK = {"name": "arn_network", "model": "resnet18", "layers": [1, 1, 1, 1],
                "channels": [8, 16, 32, 64], "decoder_channels": [32, 16, 16, 8, 3]}


def recipe_example() -> dict[str, Any]:
    """The contract check's recipe: a tiny ResNet-18-style ARN, no pretrained stage."""
    return {
        "method": {"pretrained": ""},
        "generators": {NETWORK: dict(TINY_NETWORK)},
        "data": {"source": [{"name": "synthetic", "size": "64x32"}],
                 "target": [{"name": "synthetic", "style": "real", "size": "64x32"}]},
        "loader": {"height": 64, "width": 32, "normalize": "tanh", "sampler": "random"},
        "evaluate": {"name": "ranking", "metric": "l1"},
    }

"""The frozen teacher that gives generated images their dynamic soft labels.

A teacher is a trained run, loaded with ``context.load_run``: the core's ``baseline``
method (module ``network``: backbone -> [embedding] -> neck -> classifier; the packaged
``dgnet-teacher-*`` recipes) or a ``dgnet`` run (Ea's primary head). It must have been
trained on the same identities and image size as the DG-Net run; anything else is a
ReidError that says how to train a fitting one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from reidcore.api import ReidError
from torch import nn

HOW = ("train one first: `reid run dgnet-synthetic` (or any dgnet recipe with "
       "[requires.teacher]) trains the teacher recipe before DG-Net, or run e.g. "
       "`reid run dgnet-teacher-market1501 --out runs/teacher` and set "
       "method.teacher = \"runs/teacher\"")


class Teacher:
    """``logits(images)``: the teacher's identity logits, no gradient.

    ``bn = "train"`` (the official ``train_bn``) normalises with batch statistics: every
    other layer stays in eval mode (no dropout) until ``dropout`` is set (the official
    teacher after its first image dump: everything in train mode)."""

    def __init__(self, networks: list[nn.Module], forward: Callable[[torch.Tensor], torch.Tensor],
                 num_classes: int, bn: str, source: str):
        self.networks, self._forward = networks, forward
        self.num_classes, self.bn, self.source = num_classes, bn, source
        self.dropout = False

    def _set_modes(self) -> None:
        for network in self.networks:
            network.train(self.dropout)
            if self.dropout:
                continue
            if self.bn == "train":
                for module in network.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.train()

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        self._set_modes()
        with torch.no_grad():
            return self._forward(images)


def _baseline_forward(network: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(images: torch.Tensor) -> torch.Tensor:
        features = network.backbone(images)
        if getattr(network, "embedding", None) is not None:
            features = network.embedding(features)
        return network.classifier(network.neck(features))
    return forward


def from_loaded(loaded: Any, bn: str) -> Teacher:
    """Adapt a :class:`reidcore.api.LoadedRun` of a supported method."""
    method = loaded.recipe.method.name
    if method == "baseline":
        network = loaded["network"]
        classes = int(network.classifier.fc.out_features)
        return Teacher([network], _baseline_forward(network), classes, bn, str(loaded.run_dir))
    if method == "dgnet":
        ea = loaded["ea"]
        classes = int(ea.primary.classifier.out_features)
        return Teacher([ea], lambda x: ea(x)[1], classes, bn, str(loaded.run_dir))
    raise ReidError(f"DG-Net's teacher {loaded.run_dir} is a '{method}' run; the teacher must "
                    f"be a 'baseline' (or 'dgnet') run: {HOW}")


def load_teacher(context: Any, ref: str, bn: str) -> Teacher:
    """Load and check the teacher ``ref`` (a ``[requires]`` role, run directory or checkpoint)
    against this run: same number of identities, same image size and normalisation."""
    try:
        loaded = context.load_run(ref)
    except ReidError as exc:
        raise type(exc)(f"DG-Net needs a trained teacher (method.teacher = {ref!r}): {exc}. "
                        f"{HOW}") from None
    teacher = from_loaded(loaded, bn)
    if teacher.num_classes != context.num_classes:
        raise ReidError(f"DG-Net's teacher {loaded.run_dir} classifies {teacher.num_classes} "
                        f"identities but this run trains on {context.num_classes}: the teacher "
                        f"must be trained on the same [[data.source]] data; {HOW}")
    ours, theirs = context.recipe.loader, loaded.recipe.loader
    for key in ("height", "width", "normalize"):
        if getattr(ours, key) != getattr(theirs, key):
            raise ReidError(f"DG-Net's teacher {loaded.run_dir} was trained with loader.{key} = "
                            f"{getattr(theirs, key)!r} but this run uses "
                            f"{getattr(ours, key)!r}; train the teacher with the same value "
                            f"(its recipe's [loader] section); {HOW}")
    return teacher

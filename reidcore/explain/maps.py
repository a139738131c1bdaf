"""Where a re-ID network looks, computed from any method's ``embed``.

The network's last spatial feature map is found by hooks on every module the method
names: the last module to output a ``B x C x H x W`` map with H x W > 1 during ``embed``
(pooling gives 1 x 1 and is skipped), taken on its first call (a method that flip-averages
inside ``embed`` runs the mirrored image second). Two maps come from it:

* the activation map, the re-ID convention (torchreid's ``visualize_actmap``, after
  Zagoruyko & Komodakis): the L2 norm over channels at each position;
* a similarity Grad-CAM (Selvaraju et al.; the similarity target as in Chen et al.'s
  "Explainable re-ID"): the gradient of the cosine similarity between two embeddings with
  respect to one image's feature map, averaged over positions as channel weights, the
  weighted sum over channels, ReLU.

The hooks are written here (some 40 lines) rather than taken from ``grad-cam``: that
library handles embedding targets (``SimilarityToConceptTarget``) but pulls in
opencv-python, scikit-learn, matplotlib and ttach, and would still need this module's
search for the layer inside a plugin's network.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from reidcore.errors import ReidError


class FeatureMapProbe:
    """Records the spatial maps the method's modules output while it embeds."""

    def __init__(self, method: Any, name: str = "method"):
        self.name = name
        self.modules: dict[str, nn.Module] = {}
        for root, network in method.modules().items():
            for child, module in network.named_modules():
                self.modules.setdefault(f"{root}.{child}" if child else root, module)
        self.outputs: list[tuple[str, torch.Tensor]] = []

    @contextlib.contextmanager
    def recording(self) -> Iterator[FeatureMapProbe]:
        self.outputs = []
        handles = [module.register_forward_hook(self._hook(name))
                   for name, module in self.modules.items()]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, name: str) -> Any:
        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            if (isinstance(output, torch.Tensor) and output.dim() == 4
                    and output.shape[-1] * output.shape[-2] > 1):
                self.outputs.append((name, output))
        return record

    def last_map(self, layer: str | None = None) -> tuple[str, torch.Tensor]:
        """``(module name, B x C x H x W)``: the first output of ``layer`` (a module name),
        by default of the module that gave the call's last spatial map."""
        from reidcore.errors import did_you_mean

        if not self.outputs:
            raise ReidError(f"{self.name}: no module gave a spatial feature map (B x C x H x W "
                            "with H x W > 1) while embedding, so there is nothing to map")
        names = list(dict.fromkeys(name for name, _ in self.outputs))
        chosen = layer or names[-1]
        if chosen not in names:
            raise ReidError(f"{self.name}: module '{chosen}' gave no spatial feature map"
                            f"{did_you_mean(chosen, names)} (those that did: "
                            f"{', '.join(names[-8:])})")
        return chosen, next(tensor for name, tensor in self.outputs if name == chosen)


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Each ``B x h x w`` map scaled to [0, 1] (a constant map becomes 0)."""
    flat = maps.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(1e-12)).view_as(maps)


@torch.no_grad()
def activation_maps(method: Any, images: torch.Tensor, name: str = "method",
                    layer: str | None = None) -> tuple[torch.Tensor, str]:
    """``(B x h x w maps in [0, 1], module name)``: the L2 norm over channels of the last
    feature map."""
    probe = FeatureMapProbe(method, name)
    with probe.recording():
        method.embed(images)
    module, features = probe.last_map(layer)
    return normalise_maps(features.float().norm(dim=1)), module


def embed_with_gradients(method: Any, images: torch.Tensor, name: str = "method"
                         ) -> torch.Tensor:
    """``method.embed`` with autograd on: a ``@torch.no_grad()`` decorator on ``embed`` is
    unwrapped; an embedding still cut from its inputs is an error naming the method."""
    embed = inspect.unwrap(type(method).embed)
    with torch.enable_grad():
        embedding = embed(method, images.requires_grad_(True))
    if not embedding.requires_grad:
        raise ReidError(f"{name}: its embed computes without gradients (torch.no_grad or "
                        "detach inside), so the similarity Grad-CAM cannot be computed; "
                        "the activation maps do not need them")
    return embedding


def similarity_gradcam(method: Any, first: torch.Tensor, second: torch.Tensor,
                       name: str = "method", layer: str | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM of the cosine similarity of each pair ``(first[i], second[i])`` on each
    image's last feature map: two ``B x h x w`` tensors in [0, 1]."""
    probe = FeatureMapProbe(method, name)
    maps = []
    embeddings = []
    for images in (first, second):
        with probe.recording():
            embeddings.append(embed_with_gradients(method, images.clone(), name).float())
        maps.append(probe.last_map(layer)[1])
    similarity = nn.functional.cosine_similarity(embeddings[0], embeddings[1], dim=1).sum()
    gradients = torch.autograd.grad(similarity, maps, allow_unused=True)
    cams = []
    for features, gradient in zip(maps, gradients, strict=True):
        if gradient is None:
            raise ReidError(f"{name}: the embedding does not depend on its last feature map "
                            "(the map found is not on the embedding's path)")
        weights = gradient.float().mean(dim=(2, 3), keepdim=True)
        cams.append(normalise_maps(torch.relu((weights * features.float()).sum(1)).detach()))
    return cams[0], cams[1]

"""SAN's decoder-side losses as loss components: L_Rec (``texture_l1``) and L_TR
(``texture_triplet``). The re-ID losses are the core's ``cross_entropy`` (label smoothing
0.1) and ``triplet`` (batch hard, margin 0.3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from reidcore.api import ReidError
from torch import nn

from reid_plugin_san.config import TextureL1Config, TextureTripletConfig


def _get(mapping: Mapping[str, Any], key: str, owner: str, what: str) -> Any:
    if key not in mapping:
        raise ReidError(f"{owner}: the {what} has no '{key}' (keys: "
                        f"{', '.join(sorted(mapping))})")
    return mapping[key]


class TextureL1(nn.Module):
    """L_Rec: mean |prediction - target| over every pixel and channel."""

    def __init__(self, config: TextureL1Config | None = None):
        super().__init__()
        self.config = config or TextureL1Config()

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        prediction = _get(outputs, self.config.input, "texture_l1", "method's outputs")
        target = _get(batch, self.config.target, "texture_l1", "batch (loader.textures?)")
        target = torch.as_tensor(target, device=prediction.device)
        if prediction.shape != target.shape:
            raise ReidError(f"texture_l1: decoded textures are {tuple(prediction.shape)} but "
                            f"the targets are {tuple(target.shape)}; set loader.texture_height "
                            f"/ texture_width to the decoder's output size")
        return F.l1_loss(prediction.float(), target.float())


def check_pk_layout(pids: torch.Tensor | None, batch_size: int, instances: int) -> int:
    """The number of identity groups of a P x K batch; a ReidError when the batch cannot
    carry L_TR's fixed pairing (K consecutive images per identity, at least 2 groups)."""
    how = (f"L_TR (texture_triplet) pairs images by position: it needs P x K batches with "
           f"K = {instances} consecutive images per identity and P >= 2 "
           f"(loader.sampler = \"pk\", loader.instances = {instances}, loader.identities >= 2)")
    if batch_size % instances or batch_size // instances < 2:
        raise ReidError(f"{how}; got a batch of {batch_size} images")
    groups = batch_size // instances
    if pids is not None:
        blocks = pids.detach().reshape(groups, instances).cpu()
        if not bool((blocks == blocks[:, :1]).all()):
            raise ReidError(f"{how}; the batch's pids are not in blocks of {instances}: "
                            f"{blocks.flatten().tolist()[:4 * instances]}...")
        if bool((blocks[1:, 0] == blocks[:-1, 0]).any()):
            raise ReidError(f"{how}; two consecutive blocks share an identity: "
                            f"{blocks[:, 0].tolist()}")
    return groups


def texture_triplet(maps: Sequence[torch.Tensor], instances: int = 4, margin: float = 0.3,
                    pids: torch.Tensor | None = None) -> torch.Tensor:
    """L_TR summed over identity groups and the four levels (see ``TextureTripletConfig``).

    The last group only serves as negatives, as in the code (P - 1 anchors groups)."""
    if len(maps) != 4:
        raise ReidError(f"texture_triplet needs the decoder's 4 maps, got {len(maps)}")
    k = instances
    groups = check_pk_layout(pids, maps[0].shape[0], k)
    starts = torch.arange(0, (groups - 1) * k, k, device=maps[0].device)

    def dist(level: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (level[a].float() - level[b].float()).pow(2).flatten(1).mean(1)

    # (anchor, positive, negative anchor, negative) offsets per level: the code's pairing
    pairing = ((0, 1, 0, k), (1, 2, 1, k + 1), (2, 3, 2, k + 2), (0, 3, 3, k))
    total = maps[0].new_zeros((), dtype=torch.float32)
    for level, (a, p, na, n) in zip(maps, pairing, strict=True):
        gap = dist(level, starts + a, starts + p) - dist(level, starts + na, starts + n)
        total = total + F.relu(gap + margin).sum()
    return total


class TextureTriplet(nn.Module):
    """L_TR on ``outputs[input]`` (the decoder maps s1..s4), pids from the batch."""

    def __init__(self, config: TextureTripletConfig | None = None):
        super().__init__()
        self.config = config or TextureTripletConfig()

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        maps = _get(outputs, self.config.input, "texture_triplet", "method's outputs")
        pids = batch.get("pids")
        pids = torch.as_tensor(pids) if pids is not None else None
        return texture_triplet(maps, self.config.instances, self.config.margin, pids)


def build_texture_l1(config: TextureL1Config, **_context: Any) -> TextureL1:
    return TextureL1(config)


def build_texture_triplet(config: TextureTripletConfig, **_context: Any) -> TextureTriplet:
    return TextureTriplet(config)


def texture_l1_example() -> tuple[dict[str, Any], dict[str, Any]]:
    generator = torch.Generator().manual_seed(0)
    prediction = torch.randn(2, 3, 16, 16, generator=generator, requires_grad=True)
    return {"texture": prediction}, {"textures": torch.rand(2, 3, 16, 16) * 2 - 1}


def texture_triplet_example() -> tuple[dict[str, Any], dict[str, Any]]:
    generator = torch.Generator().manual_seed(0)
    shapes = ((8, 4, 2), (4, 8, 4), (4, 16, 8), (2, 32, 16))
    maps = [torch.randn(8, *s, generator=generator, requires_grad=True) for s in shapes]
    return {"decoder_maps": maps}, {"pids": torch.tensor([3, 3, 3, 3, 7, 7, 7, 7])}

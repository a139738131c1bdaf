"""Losses of Synth-ReID / CUT, as functions and as Loss components.

Each component is an ``nn.Module`` with ``forward(outputs, batch) -> scalar``; which entries
of ``outputs`` it reads is set by its config (see :mod:`reid_plugin_cut_reid.config`). The
functions are what the ``cut_reid`` method calls directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reid_plugin_cut_reid.config import FeatureMatchingConfig, LSGANConfig, PatchNCEConfig
from reid_plugin_cut_reid.networks import PatchHeads

# --- functions ------------------------------------------------------------------------------


def lsgan(prediction: torch.Tensor, label: float) -> torch.Tensor:
    """MSE between a discriminator map and a constant label map."""
    prediction = prediction.float()
    return F.mse_loss(prediction, torch.full_like(prediction, label))


def gram(x: torch.Tensor) -> torch.Tensor:
    """B x C x C Gram matrices divided by C * H * W."""
    b, c, h, w = x.shape
    f = x.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def feature_matching(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor],
                     kind: str = "feat_match") -> torch.Tensor:
    """mean over layers of MSE(a_l, b_l) (``gram_match``: of their Gram matrices)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"feature matching needs two equally long, non-empty lists of layer "
                         f"outputs, got {len(a)} and {len(b)}")
    if kind == "gram_match":
        terms = [F.mse_loss(gram(x.float()), gram(y.float())) for x, y in zip(a, b, strict=True)]
    else:
        terms = [F.mse_loss(x.float(), y.float()) for x, y in zip(a, b, strict=True)]
    return torch.stack(terms).mean()


def patch_nce(q: torch.Tensor, k: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """PatchNCE per patch (CUT, negatives from the same image only).

    ``q`` and ``k`` are B x N x D (normalised) query and key patches; key ``k[b, i]`` is
    the positive of ``q[b, i]`` and ``k[b, j]``, j != i, its negatives. Returns the
    B * N cross-entropies of ``[q.k_i, q.k_j (j != i; the j = i entry set to -10)] / T``
    with target 0. Keys are detached.
    """
    b, n, _ = q.shape
    k = k.detach()
    positive = (q * k).sum(-1).reshape(b * n, 1)
    negative = torch.bmm(q, k.transpose(1, 2))  # B x N x N
    eye = torch.eye(n, dtype=torch.bool, device=q.device)[None]
    negative = negative.masked_fill(eye, -10.0).reshape(b * n, n)
    logits = torch.cat([positive, negative], dim=1) / temperature
    target = torch.zeros(b * n, dtype=torch.long, device=q.device)
    return F.cross_entropy(logits.float(), target, reduction="none")


def cross_entropy_label_smooth(logits: torch.Tensor, labels: torch.Tensor,
                               epsilon: float = 0.1) -> torch.Tensor:
    """sum_c -[(1 - eps) onehot + eps / K] log softmax, averaged over the batch."""
    log_p = F.log_softmax(logits.float(), dim=1)
    k = logits.shape[1]
    target = torch.full_like(log_p, epsilon / k)
    target.scatter_add_(1, labels.long()[:, None],
                        torch.full_like(log_p[:, :1], 1.0 - epsilon))
    return -(target * log_p).sum(1).mean()


# --- components -----------------------------------------------------------------------------


def _get(outputs: Mapping[str, Any], key: str, loss: str) -> Any:
    try:
        return outputs[key]
    except KeyError:
        raise KeyError(f"{loss} loss reads outputs[{key!r}] but the method gave only "
                       f"{sorted(outputs)}; set the loss's key options") from None


class LSGANLoss(nn.Module):
    def __init__(self, config: LSGANConfig):
        super().__init__()
        self.config = config

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        c = self.config
        fake = _get(outputs, c.fake, "lsgan")
        if c.role == "generator":
            return lsgan(fake, c.real_label)
        return lsgan(_get(outputs, c.real, "lsgan"), c.real_label) + lsgan(fake, c.fake_label)


class FeatureMatchingLoss(nn.Module):
    def __init__(self, config: FeatureMatchingConfig):
        super().__init__()
        self.config = config

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        c = self.config
        return feature_matching(_get(outputs, c.a, "feature_matching"),
                                _get(outputs, c.b, "feature_matching"), c.kind)


class PatchNCELoss(nn.Module):
    """PatchNCE with its own MLP heads (see ``PatchNCEConfig``). ``nce(keys, queries)``
    averages over layers; ``forward`` adds the optional identity term."""

    def __init__(self, config: PatchNCEConfig):
        super().__init__()
        self.config = config
        self.heads = PatchHeads(config.in_channels, config.head_dim, config.mlp,
                                config.head_init)

    def nce(self, keys: Sequence[torch.Tensor], queries: Sequence[torch.Tensor],
            generator: torch.Generator | None = None) -> torch.Tensor:
        if len(keys) != len(self.heads.heads) or len(queries) != len(keys):
            raise ValueError(f"PatchNCE has {len(self.heads.heads)} heads but got "
                             f"{len(keys)} key and {len(queries)} query layers")
        total = []
        for layer, (k, q) in enumerate(zip(keys, queries, strict=True)):
            ids = self.heads.sample_ids(k, self.config.num_patches, generator)
            k_emb = self.heads.project(layer, k, ids)
            q_emb = self.heads.project(layer, q, ids)
            total.append(patch_nce(q_emb, k_emb, self.config.temperature).mean())
        return torch.stack(total).mean()

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        c = self.config
        loss = self.nce(_get(outputs, c.keys, "patch_nce"), _get(outputs, c.queries, "patch_nce"))
        if c.identity_weight > 0:
            loss = loss + c.identity_weight * self.nce(
                _get(outputs, c.identity_keys, "patch_nce"),
                _get(outputs, c.identity_queries, "patch_nce"))
        return loss


def build_lsgan(config: LSGANConfig, **_context: Any) -> LSGANLoss:
    return LSGANLoss(config)


def build_feature_matching(config: FeatureMatchingConfig,
                           **_context: Any) -> FeatureMatchingLoss:
    return FeatureMatchingLoss(config)


def build_patch_nce(config: PatchNCEConfig, **_context: Any) -> PatchNCELoss:
    return PatchNCELoss(config)


# --- contract examples (tiny CPU inputs) ----------------------------------------------------


def _maps(generator: torch.Generator, shapes: Sequence[tuple[int, ...]],
          grad: bool) -> list[torch.Tensor]:
    return [torch.randn(*s, generator=generator).requires_grad_(grad) for s in shapes]


def lsgan_example() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    return ({"d_fake": torch.randn(2, 1, 8, 4, generator=g).requires_grad_(),
             "d_real": torch.randn(2, 1, 8, 4, generator=g)}, {})


def feature_matching_example() -> tuple[dict[str, list[torch.Tensor]], dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    shapes = [(2, 4, 8, 4), (2, 8, 4, 2)]
    return {"d_features_a": _maps(g, shapes, False),
            "d_features_b": _maps(g, shapes, True)}, {}


def patch_nce_example() -> tuple[dict[str, list[torch.Tensor]], dict[str, Any]]:
    """Maps of at most 256 locations, so every location is used and the loss does not
    depend on the random sampling (the state_dict check compares two calls)."""
    g = torch.Generator().manual_seed(0)
    shapes = [(2, 3, 8, 4), (2, 128, 4, 2), (2, 256, 2, 2), (2, 256, 2, 2), (2, 256, 2, 2)]
    return {"nce_source": _maps(g, shapes, False), "nce_translated": _maps(g, shapes, True)}, {}

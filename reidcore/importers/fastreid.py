"""fast-reid (He et al., JDAI-CV) checkpoints: BoT (``bagtricks_R50``), AGW and SBS with
ResNet-50, plain or IBN-a (``-ibn``), as its Market-1501 / DukeMTMC / MSMT17 configs build
them.

fast-reid's ``Checkpointer`` saves ``{"model": state_dict, "optimizer", "scheduler",
"iteration"}``. The keys: ``backbone.*`` (the ResNet, ``NL_<stage>.<i>.*`` non-local blocks
for AGW and SBS), ``heads.pool_layer.p`` (SBS's trainable GeM), ``heads.bottleneck.0.*``
(the BNNeck, a BatchNorm with frozen bias), ``heads.weight`` (the classifier; older
versions: ``heads.classifier.weight``), and in older versions the ``pixel_mean`` /
``pixel_std`` buffers. In eval mode ``EmbeddingHead`` returns the BNNeck's output whatever
``NECK_FEAT`` says (that option chooses the training triplet's feature); the model
normalises 0-255 pixels by ImageNet mean/std itself (the same as ImageNet-normalising
0-1 pixels); the test transform resizes bicubically (``interpolation=3``) to 256 x 128
(SBS: 384 x 128) and the evaluation ranks by cosine distance without flipping (fast-reid's
``TEST`` defaults).

In reid these are the ``baseline`` method with its BNNeck on the core's
``fastreid_resnet`` backbone; AGW's GeM has a fixed p = 3 (no key in the file: set from the
architecture), SBS's a trainable p (``heads.pool_layer.p``).
"""

from __future__ import annotations

from typing import Any

import torch

from reidcore.importers.mapping import Architecture, Checked, From

IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)
CLASSIFIER_KEYS = ("heads.weight", "heads.classifier.weight")


def _pixels(expected: tuple[float, float, float], what: str) -> Checked:
    def check(value: torch.Tensor) -> str:
        found = value.detach().float().reshape(-1)
        if found.numel() != 3 or not torch.allclose(found, torch.tensor(expected), atol=1e-3):
            return (f"{what} is {[round(v, 3) for v in found.tolist()]}, reid's ImageNet "
                    f"normalisation uses {list(expected)} (0-255 scale); set the recipe's "
                    f"[loader] normalize to match before trusting this import")
        return ""
    return Checked(check, f"{what} of the model's input normalisation: checked equal to "
                          f"ImageNet's, which the recipe's loader.normalize = \"imagenet\" "
                          f"applies")


def _source_factory(style: str, classifier_key: str):
    def source_of(reid_key: str) -> From | None:
        if reid_key.startswith("network.backbone.trunk."):
            return From(key="backbone." + reid_key[len("network.backbone.trunk."):])
        if reid_key.startswith("network.neck.bn."):
            return From(key="heads.bottleneck.0." + reid_key[len("network.neck.bn."):])
        if reid_key == "network.classifier.fc.weight":
            return From(key=classifier_key)
        if reid_key == "network.backbone.pool.p":
            if style == "sbs":
                return From(key="heads.pool_layer.p")
            return From(constant=3.0, why="fast-reid's GeneralizedMeanPooling (AGW): p fixed "
                                          "at 3, not stored in the checkpoint")
        return None
    return source_of


STYLES = {
    # style: (fast-reid config stem, non-local blocks per stage, pooling, GeM trainable, height)
    "bot": ("bagtricks", (0, 0, 0, 0), "avg", True, 256),
    "agw": ("AGW", (0, 2, 3, 0), "gem", False, 256),
    "sbs": ("sbs", (0, 2, 3, 0), "gem", True, 384),
}


def _recipe(name: str, style: str, ibn: bool) -> dict[str, Any]:
    _, non_local, pooling, trainable, height = STYLES[style]
    backbone: dict[str, Any] = {"name": "fastreid_resnet", "depth": 50, "ibn": ibn,
                                "non_local": list(non_local), "last_stride": 1,
                                "pooling": pooling}
    if pooling == "gem":
        backbone.update(gem_p=3.0, gem_trainable=trainable)
    return {
        "name": f"fastreid-{name}",
        "description": f"fast-reid {name} imported by reid import (embedding: the BNNeck's "
                       f"output, cosine distance); losses are the baseline's for fine-tuning",
        "method": {"name": "baseline", "neck": "bnneck", "retrieval": "after_neck"},
        "backbone": backbone,
        "losses": [{"name": "cross_entropy", "weight": 1.0, "label_smoothing": 0.1},
                   {"name": "triplet", "weight": 1.0, "margin": 0.3}],
        "loader": {"height": height, "width": 128, "interpolation": "bicubic",
                   "normalize": "imagenet"},
        "evaluate": {"name": "ranking", "metric": "cosine", "normalisation": "none",
                     "flip": False},
    }


def architectures(classifier_key: str = CLASSIFIER_KEYS[0]) -> dict[str, Architecture]:
    """The fast-reid architectures ``reid import fastreid --arch`` knows, named after
    fast-reid's config files (``configs/Market1501/bagtricks_R50-ibn.yml``...).
    ``classifier_key``: where this file keeps the classifier (it moved between versions)."""
    archs: dict[str, Architecture] = {}
    for style, (stem, non_local, pooling, _, _) in STYLES.items():
        for ibn in (False, True):
            name = f"{stem}_R50{'-ibn' if ibn else ''}"
            pool = {"avg": "average", "gem": "GeM"}[pooling]
            archs[name] = Architecture(
                "fastreid", name, _recipe(name, style, ibn),
                _source_factory(style, classifier_key),
                checked={"pixel_mean": _pixels(IMAGENET_MEAN_255, "pixel_mean"),
                         "pixel_std": _pixels(IMAGENET_STD_255, "pixel_std")},
                classifier_key=CLASSIFIER_KEYS,
                embedding=f"2048-d BNNeck output on the {pool}-pooled layer4 feature"
                          + (", non-local blocks in stages 2-3" if any(non_local) else ""))
    return archs


ALIASES = {"bot_R50": "bagtricks_R50", "bot_R50-ibn": "bagtricks_R50-ibn"}

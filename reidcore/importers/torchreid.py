"""torchreid (Zhou and Xiang, deep-person-reid) checkpoints: ``resnet50``,
``resnet50_fc512`` and ``osnet_x1_0`` (and OSNet's narrower widths).

torchreid saves ``{"state_dict": model.state_dict(), "epoch", "rank1", "optimizer"}``
(``model.pth.tar-N``; keys start with ``module.`` when it trained under DataParallel).
Its models in eval mode return the pooled feature, after ``fc`` where there is one
(resnet50_fc512 and OSNet: Linear + BatchNorm1d + ReLU to 512), never the classifier's
output; its test transform is resize to 256 x 128 (bilinear), ToTensor, ImageNet mean/std,
and its evaluation ranks by Euclidean distance without normalising or flipping (defaults of
``torchreid.engine``).

In reid these are the ``baseline`` method without a neck (``neck = "none"``, retrieval
before it), with the classifier's bias; the trunk is timm's ``resnet50`` (torchvision's
layout, same keys) or the core's ``osnet`` backbone; torchreid's ``fc`` is the baseline's
``embedding_head = "linear_bn_relu"``.
"""

from __future__ import annotations

from typing import Any

from reidcore.importers.mapping import Architecture, From

EMBEDDING_PREFIXES = {"network.embedding.linear.": "fc.0.", "network.embedding.bn.": "fc.1."}


def _source_of(reid_key: str) -> From | None:
    prefixes = {"network.backbone.trunk.": "", "network.classifier.fc.": "classifier.",
                **EMBEDDING_PREFIXES}
    for prefix, replacement in prefixes.items():
        if reid_key.startswith(prefix):
            return From(key=replacement + reid_key[len(prefix):])
    return None


def _recipe(arch: str, backbone: dict[str, Any], embedding_dim: int) -> dict[str, Any]:
    method: dict[str, Any] = {"name": "baseline", "neck": "none", "retrieval": "before_neck",
                              "classifier_bias": True}
    if embedding_dim:
        method.update(embedding_dim=embedding_dim, embedding_head="linear_bn_relu")
    return {
        "name": f"torchreid-{arch}",
        "description": f"torchreid {arch} imported by reid import (embedding: the pooled "
                       f"feature{' after fc' if embedding_dim else ''}, Euclidean distance)",
        "method": method,
        "backbone": backbone,
        # torchreid's softmax engine: cross-entropy with label smoothing 0.1 (for fine-tuning)
        "losses": [{"name": "cross_entropy", "weight": 1.0, "label_smoothing": 0.1}],
        "loader": {"height": 256, "width": 128, "interpolation": "bilinear",
                   "normalize": "imagenet"},
        "evaluate": {"name": "ranking", "metric": "euclidean", "normalisation": "none",
                     "flip": False},
    }


def architectures() -> dict[str, Architecture]:
    """The torchreid architectures ``reid import torchreid --arch`` knows."""
    archs = {
        "resnet50": Architecture(
            "torchreid", "resnet50",
            _recipe("resnet50", {"name": "timm", "model": "resnet50", "last_stride": 2,
                                 "pooling": "avg"}, 0),
            _source_of, embedding="2048-d global-average-pooled layer4 feature (last stride 2)"),
        "resnet50_fc512": Architecture(
            "torchreid", "resnet50_fc512",
            _recipe("resnet50_fc512", {"name": "timm", "model": "resnet50", "last_stride": 1,
                                       "pooling": "avg"}, 512),
            _source_of, embedding="512-d output of fc (Linear + BN + ReLU) on the pooled "
                                  "layer4 feature (last stride 1)"),
    }
    for width in ("x1_0", "x0_75", "x0_5", "x0_25"):
        name = f"osnet_{width}"
        archs[name] = Architecture(
            "torchreid", name,
            _recipe(name, {"name": "osnet", "width": width, "pooling": "avg"}, 512),
            _source_of, embedding="512-d output of fc (Linear + BN + ReLU) on the pooled "
                                  "conv5 feature")
    return archs

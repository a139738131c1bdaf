"""Hook module: only attrs config classes and specs here, no torch import."""

from __future__ import annotations

import attrs

from reidcore.api import ComponentSpec, hookimpl

REID_API_VERSION = 2  # the reidcore.api version this plugin is written for


@attrs.define
class TinyCNNConfig:
    """Options of the ``tiny_cnn`` backbone (recipe keys of ``[backbone]``)."""

    width: int = attrs.field(default=16, validator=attrs.validators.ge(4))
    feature_dim: int = attrs.field(default=32, validator=attrs.validators.ge(2))


@attrs.define
class EmbeddingNormConfig:
    """Options of the ``embedding_norm`` loss."""

    target: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))


@attrs.define
class TinyClassifierConfig:
    """Options of the ``tiny_classifier`` method (recipe keys of ``[method]``)."""

    scale: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    """Multiplies the embedding before the classifier."""


@hookimpl
def reid_backbones() -> list[ComponentSpec]:
    return [ComponentSpec(name="tiny_cnn", kind="backbone", config=TinyCNNConfig,
                          build="reid_plugin_example.networks:build_tiny_cnn",
                          summary="three conv blocks and global average pooling")]


@hookimpl
def reid_losses() -> list[ComponentSpec]:
    return [ComponentSpec(name="embedding_norm", kind="loss", config=EmbeddingNormConfig,
                          build="reid_plugin_example.networks:build_embedding_norm",
                          example="reid_plugin_example.networks:embedding_norm_example",
                          summary="squared gap between embedding norms and a target norm")]


@hookimpl
def reid_methods() -> list[ComponentSpec]:
    return [ComponentSpec(name="tiny_classifier", kind="method", config=TinyClassifierConfig,
                          build="reid_plugin_example.method:TinyClassifier",
                          example="reid_plugin_example.method:example_recipe",
                          summary="backbone + linear classifier, trained with the recipe's "
                                  "losses")]

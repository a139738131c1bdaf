"""The plugin author's API: everything a plugin's package code imports from the core.

A plugin imports ``reidcore.api`` and nothing else of the core (its tests may also use
:mod:`reidcore.testing`); a test of the core fails when a plugin under ``plugins/`` does
otherwise. Names are loaded on first use, so a hook module may import the light ones
(``hookimpl``, ``ComponentSpec``, ``RecipeProblem``) without importing torch.

The API's version: ``API_VERSION``. A plugin's hook module states the version it was
written for as a literal, ``REID_API_VERSION = 2``; ``reid plugins`` reports a plugin
written for another version as that plugin's error, and nothing of it is registered.

Registering components (hook modules; see :mod:`reidcore.hookspecs` for every hook)
    ``hookimpl``, ``ComponentSpec``, ``MethodNeeds`` (what a method reads from its recipe:
    ``[train]`` keys, generator roles, ``[[losses]]``, batch parts, and ``RunOption``: the
    ``[method]`` options naming runs it loads), ``Kind``,
    ``Registry``, ``RecipeProblem``
The contracts components fulfil (Protocols: a component needs none of them to conform)
    ``Dataset``, ``Backbone``, ``Generator``, ``Loss``, ``Evaluator``, ``Method``,
    ``ShardsGallery`` (an evaluator that ranks a gallery sharded over DDP ranks), and the
    training batch's layout ``Batch`` (``TargetBatch`` for ``batch["target"]``)
What a method's mechanism can show, measured against the synthetic data's ground truth
    ``SwapsAppearance`` (``swap(appearance, structure)``), ``TranslatesStyle``
    (``translate(images)``), ``EstimatesTexture`` (``estimate_texture(images)``);
    ``SyntheticTruth`` (a true swap, translation or texture of any generated image),
    ``masked_l1``, ``masked_ssim``, ``measure_mechanism`` (a trained run's report, as
    ``reid mechanism RUN``)
Data records
    ``ImageRecord``, ``DatasetSplits``, ``SplitStats``, ``FeatureSet``, ``RunInfo``
What a method's build function receives, and what its step uses
    ``MethodContext`` (recipe, registry, clock, builders, ``make_optimizer``,
    ``make_scheduler``, ``schedule``, ``inputs``, ``wrap``, ``load_run``, ``log_images``),
    ``Precision``, ``Optimization`` (the record ``configure_optimizers`` returns),
    ``StepOptimizers`` (what ``training_step(batch, step, optim)`` updates with:
    ``optim.update(name, loss)``, ``optim.frozen(*modules)``, ``optim.backward`` /
    ``optim.step``), ``Clock``, ``ClockLR``, ``lr_factor`` (LR schedules read from the
    engine's clock), ``linear_ramp``, ``step_ramp`` (loss-weight ramps), ``LoadedRun``,
    ``load_run`` (another run, frozen), ``keep_rng_states`` (work done lazily inside a
    step, such as loading another run, that must not move the global RNGs: a resumed run
    would train on another random stream)
Losses and evaluators a method reuses
    ``WeightedLoss``, ``batch_hard_triplet``, ``pairwise_euclidean``, ``FID``,
    ``frechet_distance``, ``frechet_distance_of_features``, ``rank_metrics``
Networks
    ``GeneralizedMeanPooling``, ``PooledBackbone``, ``load_weights``, ``read_state_dict``,
    ``weight_loading_enabled`` (False while ``reid check --build`` builds offline)
Images and files
    ``find_images``, ``IMAGE_SUFFIXES``, ``open_image``, ``image_grid``, ``save_png``,
    ``atomic_open``, ``atomic_write_text``
Deploying and inspecting a trained run
    ``export_onnx`` (its inference embedding as ONNX, checked against PyTorch on its test
    images), ``explain_run`` (activation maps and similarity Grad-CAM of query images and
    their top matches, as labelled PNGs)
Progress (a plugin's long commands)
    ``progress`` (wraps an iterable in a bar on a terminal), ``ProgressCounter``
Errors (the CLI prints a ReidError's message without a traceback)
    ``ReidError``, ``RecipeError``, ``UnknownComponentError``, ``did_you_mean``
Recipes (for a plugin's own commands)
    ``load_recipe`` (a file or packaged name, with ``--set`` overrides), ``Recipe``,
    ``Requirement``
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from reidcore import __version__, hookimpl
from reidcore.errors import (
    RecipeError,
    RecipeProblem,
    ReidError,
    UnknownComponentError,
    did_you_mean,
)
from reidcore.registry import ComponentSpec, Kind, MethodNeeds, Registry, RunOption

API_VERSION = 2
"""Version 2: ``training_step(batch, step, optim)``, optimizers built by the core,
``MethodNeeds`` in method specs."""

_LAZY: dict[str, str] = {
    # contracts and records (no torch)
    "Dataset": "reidcore.interfaces", "Backbone": "reidcore.interfaces",
    "Generator": "reidcore.interfaces", "Loss": "reidcore.interfaces",
    "Evaluator": "reidcore.interfaces", "Method": "reidcore.interfaces",
    "ShardsGallery": "reidcore.interfaces",
    "SwapsAppearance": "reidcore.interfaces", "TranslatesStyle": "reidcore.interfaces",
    "EstimatesTexture": "reidcore.interfaces",
    "SyntheticTruth": "reidcore.data.synth_truth",
    "measure_mechanism": "reidcore.engine.mechanism_command",
    "masked_l1": "reidcore.evaluation.mechanism", "masked_ssim": "reidcore.evaluation.mechanism",
    "Batch": "reidcore.interfaces", "TargetBatch": "reidcore.interfaces",
    "ImageRecord": "reidcore.records", "DatasetSplits": "reidcore.records",
    "SplitStats": "reidcore.records", "FeatureSet": "reidcore.records",
    "RunInfo": "reidcore.records",
    "Recipe": "reidcore.recipe", "Requirement": "reidcore.recipe",
    "load_recipe": "reidcore.recipe",
    "atomic_open": "reidcore.fileio", "atomic_write_text": "reidcore.fileio",
    "find_images": "reidcore.data.datasets.base",
    "IMAGE_SUFFIXES": "reidcore.data.datasets.base",
    # the run as a method sees it
    "MethodContext": "reidcore.engine.context", "Precision": "reidcore.engine.context",
    "Optimization": "reidcore.engine.optim", "Clock": "reidcore.engine.optim",
    "StepOptimizers": "reidcore.engine.step",
    "ClockLR": "reidcore.engine.optim", "lr_factor": "reidcore.engine.optim",
    "linear_ramp": "reidcore.engine.ramps", "step_ramp": "reidcore.engine.ramps",
    "LoadedRun": "reidcore.engine.runs", "load_run": "reidcore.engine.context",
    "image_grid": "reidcore.engine.images", "save_png": "reidcore.engine.images",
    "keep_rng_states": "reidcore.engine.evaluate",
    # reusable pieces
    "WeightedLoss": "reidcore.losses.losses", "batch_hard_triplet": "reidcore.losses.losses",
    "pairwise_euclidean": "reidcore.losses.losses",
    "FID": "reidcore.evaluation.fid", "frechet_distance": "reidcore.evaluation.fid",
    "frechet_distance_of_features": "reidcore.evaluation.fid",
    "rank_metrics": "reidcore.evaluation.ranking",
    "GeneralizedMeanPooling": "reidcore.models.pooling",
    "PooledBackbone": "reidcore.models.backbone",
    "load_weights": "reidcore.models.weights", "read_state_dict": "reidcore.models.weights",
    "weight_loading_enabled": "reidcore.models.weights",
    "open_image": "reidcore.data.loaders",
    "progress": "reidcore.progress", "ProgressCounter": "reidcore.progress",
    "export_onnx": "reidcore.export.run_export", "explain_run": "reidcore.explain.run_explain",
}

__all__ = sorted(["__version__", "API_VERSION", "hookimpl", "ComponentSpec", "MethodNeeds",
                  "RunOption", "Kind", "Registry",
                  "RecipeProblem", "ReidError", "RecipeError", "UnknownComponentError",
                  "did_you_mean", *_LAZY])


def __getattr__(name: str) -> Any:
    """Import a lazily exported name on first use (PEP 562) and cache it here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"reidcore.api has no attribute {name!r}"
                             f"{did_you_mean(name, __all__)}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # what type checkers and IDEs see
    from reidcore.data.datasets.base import IMAGE_SUFFIXES, find_images
    from reidcore.data.loaders import open_image
    from reidcore.data.synth_truth import SyntheticTruth
    from reidcore.engine.context import MethodContext, Precision, load_run
    from reidcore.engine.evaluate import keep_rng_states
    from reidcore.engine.images import image_grid, save_png
    from reidcore.engine.mechanism_command import measure_mechanism
    from reidcore.engine.optim import Clock, ClockLR, Optimization, lr_factor
    from reidcore.engine.ramps import linear_ramp, step_ramp
    from reidcore.engine.runs import LoadedRun
    from reidcore.engine.step import StepOptimizers
    from reidcore.evaluation.fid import FID, frechet_distance, frechet_distance_of_features
    from reidcore.evaluation.mechanism import masked_l1, masked_ssim
    from reidcore.evaluation.ranking import rank_metrics
    from reidcore.explain.run_explain import explain_run
    from reidcore.export.run_export import export_onnx
    from reidcore.fileio import atomic_open, atomic_write_text
    from reidcore.interfaces import (
        Backbone,
        Batch,
        Dataset,
        EstimatesTexture,
        Evaluator,
        Generator,
        Loss,
        Method,
        ShardsGallery,
        SwapsAppearance,
        TargetBatch,
        TranslatesStyle,
    )
    from reidcore.losses.losses import WeightedLoss, batch_hard_triplet, pairwise_euclidean
    from reidcore.models.backbone import PooledBackbone
    from reidcore.models.pooling import GeneralizedMeanPooling
    from reidcore.models.weights import load_weights, read_state_dict, weight_loading_enabled
    from reidcore.recipe import Recipe, Requirement, load_recipe
    from reidcore.records import DatasetSplits, FeatureSet, ImageRecord, RunInfo, SplitStats

"""The plugin author's manual: every hook reid calls, and what it expects back.

A plugin is a module (or object) with functions decorated by ``reidcore.hookimpl`` and
named after the hooks below, advertised in its distribution's metadata::

    [project.entry-points."reid.plugins"]
    myplugin = "reid_plugin_myplugin.plugin"

The module states the API version it is written for, ``REID_API_VERSION = 2`` (see
``reidcore.api.API_VERSION``). A function named like no hook below (``reid_loss`` for
``reid_losses``) makes the plugin fail to load, with that name in its report: pluggy's
``check_pending`` runs for each plugin as it is registered.

Rules that keep ``reid --help`` fast and plugins independent:

* The hook module imports no torch and does no work at import time; give build functions
  as ``"package.module:function"`` strings so heavy modules load only when used.
* Never import another plugin or an underscore name of the core.
* Component names are global per kind: a name two plugins register is a conflict, an
  error (naming both providers) for a recipe that uses it and nothing else.

The core registers its own components through these very hooks (``reidcore.builtin``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from reidcore.errors import RecipeProblem
    from reidcore.records import RunInfo
    from reidcore.registry import ComponentSpec, Registry

PROJECT_NAME = "reid"
ENTRY_POINT_GROUP = "reid.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


# --- registration: return component specs ------------------------------------------------


@hookspec
def reid_datasets() -> Iterable[ComponentSpec]:
    """Return dataset specs (``kind="dataset"``).

    ``build(config)`` returns an object with ``load() -> DatasetSplits`` that only indexes
    files (no transforms, no downloads, no relabeling), and ``expected`` (``SplitStats`` or
    ``None``) so ``reid data check`` can compare a local copy with the published counts.
    """


@hookspec
def reid_backbones() -> Iterable[ComponentSpec]:
    """Return backbone specs: ``build(config)`` gives an ``nn.Module`` with ``feature_dim``,
    ``forward_features(x) -> BxCxHxW`` and ``forward(x) -> BxD``."""


@hookspec
def reid_generators() -> Iterable[ComponentSpec]:
    """Return generator specs: image-to-image or codes-to-image ``nn.Module`` networks
    (discriminators register here too); methods add their own encode/decode."""


@hookspec
def reid_losses() -> Iterable[ComponentSpec]:
    """Return loss specs: ``build(config)`` gives an ``nn.Module`` whose
    ``forward(outputs, batch)`` returns a scalar; its weight comes from the recipe."""


@hookspec
def reid_evaluators() -> Iterable[ComponentSpec]:
    """Return evaluator specs: ``build(config)`` gives an object with
    ``evaluate(query: FeatureSet, gallery: FeatureSet) -> Mapping[str, float]``."""


@hookspec
def reid_methods() -> Iterable[ComponentSpec]:
    """Return method specs: trainable compositions of the other components (see
    ``reidcore.interfaces.Method`` for the contract, ``reidcore.api.MethodContext`` for what
    the build receives, and the repository's ``docs/architecture.md`` for a worked method).

    The engine builds a method as ``build(config, context=MethodContext(...))`` (``build``
    may be the method's class, ``"package.module:MyMethod"``). The spec's ``needs``
    (``reidcore.api.MethodNeeds``) says what the method reads from its recipe beyond its
    ``[method]`` table: the ``[train]`` optimization keys it honours (others are refused
    with its ``train_note``), its generator roles with their default components, whether
    it takes ``[[losses]]``, the optional batch parts its step reads; the core checks every
    recipe against it. Give the spec an ``example`` returning a small recipe for the
    contract checks (see ``reidcore.testing``): the check runs one ``training_step``."""


# --- configuration -----------------------------------------------------------------------


@hookspec
def reid_recipe_dirs() -> Iterable[Path]:
    """Return further directories of packaged ``*.toml`` recipes, so ``reid run NAME``
    finds them by file stem. Not needed for the usual place: the core adds the ``recipes``
    directory of the package that holds a plugin's hook module by itself."""


@hookspec
def reid_validate_recipe(recipe: Any, registry: Registry) -> Iterable[RecipeProblem]:
    """Return problems that span components (e.g. a method that needs a generator), after
    every section has been structured. Report all of them; never raise."""


@hookspec
def reid_add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``reid`` sub-commands. Set ``parser.set_defaults(func=callable)``; the callable
    takes the parsed ``argparse.Namespace`` and returns an exit code. Raise
    ``reidcore.errors.ReidError`` for user errors so they print without a traceback."""


# --- run lifecycle observers (loggers, profilers); return values are ignored ---------------
# An observer that raises is reported on stderr with its plugin's name (once per hook, then
# counted) and the run continues; the other plugins' observers still run.


@hookspec
def reid_run_start(run: RunInfo) -> None:
    """Called once the run directory and resolved recipe exist, before training."""


@hookspec
def reid_train_step_end(run: RunInfo, step: int, metrics: Mapping[str, float]) -> None:
    """Called after each training step with the step's metrics as floats. Reading them
    makes the host wait for the device every step: a run with no implementation of this
    hook does not (the engine reads its metrics every ``train.log_every`` steps)."""


@hookspec
def reid_evaluate_end(run: RunInfo, step: int, metrics: Mapping[str, float]) -> None:
    """Called after each evaluation with the metrics (keys ``<testset>/<metric>``)."""


@hookspec
def reid_run_end(run: RunInfo, summary: Mapping[str, Any]) -> None:
    """Called when a run finishes (also after a failure; ``summary["status"]`` says which)."""

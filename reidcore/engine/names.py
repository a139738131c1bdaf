"""Recipe values that name something the method or the evaluator declares.

``train.lr_mult`` keys and ``train.freeze`` entries name parameter groups of the method's
optimizers; ``train.best_metric`` names a metric of the evaluator. A misspelt name is
valid TOML of the right type, so the recipe phase cannot see it, and at run time it
would change nothing (no multiplier, nothing frozen, never a ``best.pt``). Checked once
the method and the evaluator exist: at ``reid check --build`` (meta device) and at the
start of ``reid run``, with a did-you-mean.
"""

from __future__ import annotations

from typing import Any

from reidcore.errors import RecipeError, RecipeProblem, did_you_mean


def group_names(optimization: Any) -> set[str]:
    """Every parameter-group name of the method's optimizers (empty groups included when
    built by :func:`~reidcore.engine.optim.make_optimizer`)."""
    names: set[str] = set()
    for optimizer in optimization.optimizers.values():
        names.update(getattr(optimizer, "reid_group_names", ()))
        names.update(str(group["name"]) for group in optimizer.param_groups
                     if group.get("name") is not None)
    return names


def metric_names(evaluator: Any) -> set[str] | None:
    """The metric names ``evaluator`` reports, from ``evaluator.metric_names()`` when it
    has one, else from scoring a tiny random query/gallery pair; None when unknown."""
    declared = getattr(evaluator, "metric_names", None)
    if callable(declared):
        return set(declared())
    import numpy as np
    import torch

    from reidcore.records import FeatureSet

    generator = torch.Generator().manual_seed(0)
    pids = np.array([1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6])
    camids = np.array([0, 1] * 6)
    features = torch.randn(12, 8, generator=generator)
    query = FeatureSet(features[::2], pids[::2], camids[::2])
    gallery = FeatureSet(features[1::2], pids[1::2], camids[1::2])
    from reidcore.engine.evaluate import keep_rng_states, keep_torch_threads

    try:
        # as every evaluation of a run: numba's first kernel must not change torch's thread
        # count, nor the probe the training's random stream
        with keep_rng_states(), keep_torch_threads():
            metrics = evaluator.evaluate(query, gallery)
    except Exception:  # an evaluator that needs more than features (weights, images)
        return None
    return {str(key) for key in metrics}


def _unknown(path: str, name: str, known: set[str], what: str) -> RecipeProblem:
    listing = ", ".join(sorted(known)) if known else "(none)"
    same_letters = [k for k in sorted(known) if k.lower() == name.lower()]
    hint = f" (did you mean '{same_letters[0]}'?)" if same_letters else did_you_mean(name, known)
    return RecipeProblem(path, f"no {what} '{name}'{hint}; there are: {listing}")


def name_problems(recipe: Any, optimization: Any, evaluator: Any) -> list[RecipeProblem]:
    """Problems with the names in ``recipe.train`` (see the module docstring);
    ``optimization`` or ``evaluator`` None: those names are not checked."""
    train, method = recipe.train, recipe.method.name
    problems = []
    groups = group_names(optimization) if optimization is not None else None
    for key in train.lr_mult if groups is not None else ():
        if groups is not None and key not in groups:
            problems.append(_unknown(f"$.train.lr_mult.{key}", key, groups,
                                     f"parameter group of method '{method}' named"))
    if train.freeze_epochs and groups is not None:  # freeze_epochs = 0: freeze names nothing
        for index, name in enumerate(train.freeze):
            if name not in groups:
                problems.append(_unknown(f"$.train.freeze[{index}]", name, groups,
                                         f"parameter group of method '{method}' named"))
    if recipe.data.test and evaluator is not None:
        metrics = metric_names(evaluator)
        if metrics is not None and train.best_metric not in metrics:
            problems.append(_unknown("$.train.best_metric", train.best_metric, metrics,
                                     f"metric of evaluator '{recipe.evaluate.name}' named"))
    return problems


def check_names(recipe: Any, optimization: Any, evaluator: Any, source: str) -> None:
    """Raise one :class:`RecipeError` for every problem of :func:`name_problems`."""
    problems = name_problems(recipe, optimization, evaluator)
    if problems:
        raise RecipeError(source, problems)

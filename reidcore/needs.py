"""A recipe checked against what its method declares it reads (:class:`MethodNeeds`).

One place, one wording, for every method: a ``[train]`` optimization key the method does
not read, ``[[losses]]`` given to a method that sets its own, an unknown or missing
generator role, a batch part the loader is not asked for, an evaluator flip on an embedding
that flips by itself. ``reid check`` and ``reid run`` report these before anything runs.
"""

from __future__ import annotations

from typing import Any

from reidcore.errors import RecipeProblem, did_you_mean
from reidcore.registry import OPTIMIZATION_KEYS, Kind, MethodNeeds, Registry
from reidcore.train_config import TrainConfig


def _train_defaults() -> dict[str, Any]:
    defaults = TrainConfig()
    return {key: getattr(defaults, key) for key in OPTIMIZATION_KEYS}


def _batch_provided(recipe: Any, part: str) -> bool:
    loader = recipe.loader
    return {"positives": loader.positive, "second": loader.second_batch,
            "textures": loader.textures, "target": bool(recipe.data.target)}[part]


_BATCH_FIX = {"positives": ("$.loader.positive", "set loader.positive = true"),
              "second": ("$.loader.second_batch", "set loader.second_batch = true"),
              "textures": ("$.loader.textures", "set loader.textures = true"),
              "target": ("$.data.target", "add a [[data.target]] dataset")}


def needs_problems(recipe: Any, registry: Registry) -> list[RecipeProblem]:
    """Every way ``recipe`` disagrees with its method's :class:`MethodNeeds`."""
    name = recipe.method.name
    if (Kind.METHOD, name) not in registry:
        return []
    needs: MethodNeeds = registry.get(Kind.METHOD, name).needs
    problems: list[RecipeProblem] = []
    defaults = _train_defaults()
    for key in OPTIMIZATION_KEYS:
        if key in needs.train:
            continue
        value = getattr(recipe.train, key)
        if value != defaults[key]:
            reason = needs.train_note or f"{name} does not read it"
            problems.append(RecipeProblem(
                f"$.train.{key}", f"method '{name}' does not read train.{key} (set to "
                f"{value!r}): {reason}; remove it"))
    if ({"optimizer", "momentum"} <= needs.train and recipe.train.optimizer != "sgd"
            and recipe.train.momentum != defaults["momentum"]):
        problems.append(RecipeProblem(
            "$.train.momentum", f"train.momentum = {recipe.train.momentum} applies to "
            f"optimizer = \"sgd\" only; train.optimizer is \"{recipe.train.optimizer}\" "
            f"(Adam's moments are fixed at betas 0.9, 0.999): remove it or use sgd"))
    if recipe.losses and not needs.losses:
        reason = needs.losses_note or f"{name} sets its own losses"
        problems.append(RecipeProblem("$.losses", f"method '{name}' takes no [[losses]]: "
                                      f"{reason}; remove them"))
    for role in recipe.generators:
        if role not in needs.roles:
            known = ", ".join(needs.roles) or "(none)"
            problems.append(RecipeProblem(
                f"$.generators.{role}", f"method '{name}' has no generator role '{role}'"
                f"{did_you_mean(role, list(needs.roles))}; its roles: {known}"))
    for role, default in needs.roles.items():
        if default is None and role not in recipe.generators:
            problems.append(RecipeProblem(
                f"$.generators.{role}", f"method '{name}' needs [generators.{role}] (no "
                f"default component)"))
    for part in sorted(needs.batch):
        if not _batch_provided(recipe, part):
            path, fix = _BATCH_FIX[part]
            problems.append(RecipeProblem(path, f"method '{name}' reads batch[\"{part}\"]: "
                                                f"{fix}"))
    if needs.flip_note and getattr(recipe.evaluate.config, "flip", False):
        problems.append(RecipeProblem("$.evaluate.flip", f"method '{name}': "
                                      f"{needs.flip_note}: set the evaluator's flip = false"))
    return problems


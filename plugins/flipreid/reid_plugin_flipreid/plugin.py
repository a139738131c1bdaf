"""Hook module of reid-plugin-flipreid: config classes and specs only, no torch import."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reidcore.api import ComponentSpec, MethodNeeds, RecipeProblem, hookimpl

from reid_plugin_flipreid.config import FlippingLossConfig, FlipReIDConfig

REID_API_VERSION = 2

_PKG = "reid_plugin_flipreid"

NEEDS = MethodNeeds(
    train={"lr", "weight_decay"},
    train_note="flipreid uses Adam with its own per-phase schedule: set the LR floor, "
               "warm-up and step decay with method.lr_floor / warmup_epochs / drop_every / "
               "drop_factor, Adam's epsilon with method.adam_eps")
"""FlipReID reads ``train.lr`` and ``train.weight_decay`` (and the engine's ``lr_mult``,
``optimizer_impl``); its optimizer is always Adam and its LR schedule its own."""


@hookimpl
def reid_losses() -> list[ComponentSpec]:
    return [ComponentSpec(
        name="flipping", kind="loss", config=FlippingLossConfig,
        build=f"{_PKG}.losses:build_flipping", example=f"{_PKG}.losses:flipping_example",
        summary="FlipReID's flipping loss: MSE between embeddings of images and their flips")]


@hookimpl
def reid_methods() -> list[ComponentSpec]:
    return [ComponentSpec(
        name="flipreid", kind="method", config=FlipReIDConfig,
        build=f"{_PKG}.method:FlipReID", example=f"{_PKG}.method:example_recipe",
        needs=NEEDS,
        summary="FlipReID: train on images and their flips (flipping loss), flip-averaged "
                "global + 2-stripe embeddings")]


@hookimpl
def reid_validate_recipe(recipe: Any, registry: Any) -> Iterable[RecipeProblem]:
    if recipe.method.name != "flipreid" or not isinstance(recipe.method.config, FlipReIDConfig):
        return []
    problems = []
    variant = recipe.method.config.variant
    if variant != "flipreid":
        for index, section in enumerate(recipe.losses):
            if section.name == "flipping":
                problems.append(RecipeProblem(
                    f"$.losses[{index}].name",
                    f"the flipping loss needs the flip structure but method.variant = "
                    f"'{variant}'; remove this loss or set variant = 'flipreid'"))
    if recipe.train.freeze_epochs:
        problems.append(RecipeProblem(
            "$.train.freeze_epochs",
            "flipreid freezes its backbone itself (its Adam state carried over and the LR "
            "schedule restarted afterwards): set method.frozen_epochs instead and leave this "
            "at 0"))
    return problems

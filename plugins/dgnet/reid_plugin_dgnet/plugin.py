"""Hook module of reid-plugin-dgnet: config classes and specs only, no torch import."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from reidcore.api import ComponentSpec, RecipeProblem, hookimpl

from reid_plugin_dgnet.config import (
    DecoderConfig,
    DGNetConfig,
    DiscriminatorConfig,
    StructureEncoderConfig,
)

_PKG = "reid_plugin_dgnet"
METHOD = "dgnet"
ROLES = {"structure": "dgnet_structure_encoder", "decoder": "dgnet_decoder",
         "discriminator": "dgnet_discriminator"}


@hookimpl
def reid_generators() -> list[ComponentSpec]:
    return [
        ComponentSpec(name="dgnet_structure_encoder", kind="generator",
                      config=StructureEncoderConfig,
                      build=f"{_PKG}.networks:build_structure_encoder",
                      example=f"{_PKG}.networks:gray_example",
                      summary="DG-Net's Es: gray image -> structure code (4 convs, residual "
                              "blocks, ASPP; 380,544 parameters at paper size)"),
        ComponentSpec(name="dgnet_decoder", kind="generator", config=DecoderConfig,
                      build=f"{_PKG}.networks:build_decoder",
                      example=f"{_PKG}.networks:decoder_example",
                      summary="DG-Net's G: AdaIN residual blocks driven by MLPs of the "
                              "appearance code, LayerNorm up-sampling"),
        ComponentSpec(name="dgnet_discriminator", kind="generator",
                      config=DiscriminatorConfig,
                      build=f"{_PKG}.networks:build_discriminator",
                      example=f"{_PKG}.networks:image_example",
                      summary="multi-scale PatchGAN discriminator (3 scales, LSGAN + R1)"),
    ]


@hookimpl
def reid_methods() -> list[ComponentSpec]:
    return [
        ComponentSpec(name=METHOD, kind="method", config=DGNetConfig,
                      build=f"{_PKG}.method:build", example=f"{_PKG}.method:recipe_example",
                      summary="DG-Net: joint discriminative and generative learning "
                              "(appearance/structure swaps, teacher soft labels)"),
    ]


@hookimpl
def reid_validate_recipe(recipe: Any, registry: Any) -> list[RecipeProblem]:
    """A dgnet recipe: two loaders with positives, erasing done by the method, no
    [[losses]], the three generator roles, and no evaluator flip (embed flips)."""
    if recipe.method.name != METHOD:
        return []
    problems = []
    loader = recipe.loader
    for key in ("positive", "second_batch"):
        if not getattr(loader, key):
            problems.append(RecipeProblem(f"$.loader.{key}", "dgnet needs two batches (A and "
                                          "B) with a positive image each: set "
                                          "loader.positive = true and "
                                          "loader.second_batch = true"))
    if loader.erasing > 0:
        problems.append(RecipeProblem("$.loader.erasing", f"dgnet erases only the images Ea "
                                      f"classifies (method.erasing), never the generator's "
                                      f"targets: set loader.erasing = 0 (got "
                                      f"{loader.erasing}) and method.erasing instead"))
    if recipe.losses:
        problems.append(RecipeProblem("$.losses", "dgnet sets its loss weights in [method] "
                                      "(recon_x_w, recon_id_w, gan_w, max_teacher_w, ...); "
                                      "remove [[losses]]"))
    for role in recipe.generators:
        if role not in ROLES:
            problems.append(RecipeProblem(f"$.generators.{role}", f"dgnet uses the roles "
                                          f"{', '.join(ROLES)}; got unknown role '{role}'"))
    if getattr(recipe.evaluate.config, "flip", False):
        problems.append(RecipeProblem("$.evaluate.flip", "dgnet's embedding already sums the "
                                      "mirrored image's features (as the official test "
                                      "script): set the evaluator's flip = false"))
    return problems


@hookimpl
def reid_add_commands(subparsers: Any) -> None:
    from reid_plugin_dgnet.commands import add_commands

    add_commands(subparsers)


@hookimpl
def reid_recipe_dirs() -> list[Path]:
    return [Path(str(files(_PKG) / "recipes"))]

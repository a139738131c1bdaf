"""Hook module of reid-plugin-san: config classes and specs only, no torch import."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from reidcore.api import ComponentSpec, RecipeProblem, hookimpl

from reid_plugin_san.config import (
    SADecoderConfig,
    SanConfig,
    SanPGConfig,
    TextureL1Config,
    TextureTripletConfig,
)

_PKG = "reid_plugin_san"


@hookimpl
def reid_generators() -> list[ComponentSpec]:
    return [
        ComponentSpec(name="sa_decoder", kind="generator", config=SADecoderConfig,
                      build=f"{_PKG}.networks:build_decoder",
                      example=f"{_PKG}.networks:decoder_example",
                      summary="SAN's SA-Dec: U-Net-like texture decoder on the four ResNet "
                              "stage maps (9,071,075 parameters for ResNet-50)"),
    ]


@hookimpl
def reid_losses() -> list[ComponentSpec]:
    return [
        ComponentSpec(name="texture_l1", kind="loss", config=TextureL1Config,
                      build=f"{_PKG}.losses:build_texture_l1",
                      example=f"{_PKG}.losses:texture_l1_example",
                      summary="SAN's L_Rec: L1 between decoded and target textures in [-1, 1]"),
        ComponentSpec(name="texture_triplet", kind="loss", config=TextureTripletConfig,
                      build=f"{_PKG}.losses:build_texture_triplet",
                      example=f"{_PKG}.losses:texture_triplet_example",
                      summary="SAN's L_TR: triplet constraints on the decoder maps with the "
                              "code's fixed P x K pairing (summed)"),
    ]


@hookimpl
def reid_methods() -> list[ComponentSpec]:
    return [
        ComponentSpec(name="san", kind="method", config=SanConfig,
                      build=f"{_PKG}.method:build", example=f"{_PKG}.method:recipe_example",
                      summary="SAN: SA-Enc re-ID (CE_ls + triplet on the 512-d fc feature) "
                              "with SA-Dec texture regression (L_Rec + L_TR), two updates"),
        ComponentSpec(name="san_pg", kind="method", config=SanPGConfig,
                      build=f"{_PKG}.pg:build", example=f"{_PKG}.pg:recipe_example",
                      summary="SAN-PG: SA-Enc trunk + SA-Dec trained by L_Rec on image / "
                              "texture pairs (PIT, synthetic), the pseudo-texture generator"),
    ]


def _backbone_problems(recipe: Any, method: str) -> list[RecipeProblem]:
    backbone = recipe.backbone
    stride = getattr(backbone.config, "last_stride", 1) if backbone is not None else 1
    if stride != 1:
        return [RecipeProblem("$.backbone.last_stride", f"{method}'s decoder adds the layer3 "
                              f"and layer4 maps: it needs last_stride = 1, got {stride}")]
    return []


def _texture_problems(recipe: Any) -> list[RecipeProblem]:
    c, loader = recipe.method.config, recipe.loader
    problems = []
    if c.textures == "dataset" and not loader.textures:
        problems.append(RecipeProblem("$.loader.textures", "san with textures = \"dataset\" "
                                      "reads each record's extras['texture']: set "
                                      "loader.textures = true (or method.decoder = false, or "
                                      "method.textures = \"folder\" / \"san_pg\")"))
    if c.textures != "dataset" and loader.textures:
        problems.append(RecipeProblem("$.loader.textures", f"san with textures = "
                                      f"\"{c.textures}\" reads its own texture folder: set "
                                      f"loader.textures = false"))
    if c.textures == "folder" and not c.texture_root:
        problems.append(RecipeProblem("$.method.texture_root", "textures = \"folder\" needs "
                                      "texture_root: a folder written by `reid san-textures`"))
    if c.textures == "san_pg" and c.san_pg not in recipe.requires \
            and not Path(c.san_pg).expanduser().exists():
        roles = ", ".join(recipe.requires) or "none"
        problems.append(RecipeProblem("$.method.san_pg", f"'{c.san_pg}' is neither a "
                                      f"[requires.<role>] of this recipe (roles: {roles}) nor "
                                      f"an existing san_pg run"))
    if loader.sampler != "pk" or loader.instances < 4 or loader.identities < 2:
        problems.append(RecipeProblem("$.loader", f"san's L_TR pairs images by position: it "
                                      f"needs sampler = \"pk\", instances >= 4 and identities "
                                      f">= 2 (got {loader.sampler}, {loader.instances}, "
                                      f"{loader.identities})"))
    return problems


@hookimpl
def reid_validate_recipe(recipe: Any, registry: Any) -> list[RecipeProblem]:
    """san / san_pg recipes: a ResNet-style backbone with last stride 1, a decoder role
    only, and texture targets where the decoder needs them."""
    name = recipe.method.name
    if name not in ("san", "san_pg"):
        return []
    problems = _backbone_problems(recipe, name)
    for role in recipe.generators:
        if role != "decoder":
            problems.append(RecipeProblem(f"$.generators.{role}", f"{name} uses the role "
                                          f"'decoder' only; got '{role}'"))
    if name == "san_pg":
        if not recipe.loader.textures:
            problems.append(RecipeProblem("$.loader.textures", "san_pg learns from image / "
                                          "texture pairs: set loader.textures = true (pit, "
                                          "synthetic)"))
        if recipe.losses:
            problems.append(RecipeProblem("$.losses", "san_pg trains with L_Rec only; "
                                          "remove [[losses]]"))
        return problems
    if recipe.method.config.decoder:
        problems += _texture_problems(recipe)
    return problems


@hookimpl
def reid_add_commands(subparsers: Any) -> None:
    from reid_plugin_san.commands import add_commands

    add_commands(subparsers)


@hookimpl
def reid_recipe_dirs() -> list[Path]:
    return [Path(str(files(_PKG) / "recipes"))]

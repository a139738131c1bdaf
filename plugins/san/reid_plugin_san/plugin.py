"""Hook module of reid-plugin-san: config classes and specs only, no torch import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reidcore.api import ComponentSpec, MethodNeeds, RecipeProblem, RunOption, hookimpl

from reid_plugin_san.config import (
    SADecoderConfig,
    SanConfig,
    SanPGConfig,
    TextureL1Config,
    TextureTripletConfig,
)

REID_API_VERSION = 2

_PKG = "reid_plugin_san"

SAN_NEEDS = MethodNeeds(
    # four Adams with SAN's own settings and schedules (the paper's warm-up, then x gamma
    # per milestone counted from its end): no [train] optimization key is read
    train=(),
    train_note="san sets its own optimizers and LR schedule: use method.lr / weight_decay "
               "/ beta1 / beta2 / amsgrad / milestones / gamma / warmup_epochs / warmup_lr "
               "/ warmup_growth (SA-Enc) and method.decoder_lr / decoder_beta1 / "
               "decoder_beta2 (the decoder-side update)",
    roles={"decoder": "sa_decoder"},
    # [[losses]] are the re-ID losses (default CE_ls + triplet). batch["textures"] is read
    # only with textures = "dataset" (the other sources are read from disk), which
    # MethodNeeds cannot say: reid_validate_recipe checks it
    runs={"san_pg": RunOption(used_when=("textures", "san_pg"))},
)

SAN_PG_NEEDS = MethodNeeds(
    train=(),
    train_note="san_pg sets its own optimizer and LR schedule: use method.lr / beta1 / "
               "beta2 / weight_decay / milestones / gamma",
    roles={"decoder": "sa_decoder"},
    losses=False,
    losses_note="san_pg trains with L_Rec only",
    batch=("textures",),
)


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
                      build=f"{_PKG}.method:San", example=f"{_PKG}.method:recipe_example",
                      needs=SAN_NEEDS,
                      summary="SAN: SA-Enc re-ID (CE_ls + triplet on the 512-d fc feature) "
                              "with SA-Dec texture regression (L_Rec + L_TR), two updates"),
        ComponentSpec(name="san_pg", kind="method", config=SanPGConfig,
                      build=f"{_PKG}.pg:SanPG", example=f"{_PKG}.pg:recipe_example",
                      needs=SAN_PG_NEEDS,
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
    """san / san_pg recipes (beyond what the core checks from their MethodNeeds): a
    ResNet-style backbone with last stride 1, and for san texture targets where the decoder
    needs them and batches L_TR can pair."""
    name = recipe.method.name
    if name not in ("san", "san_pg"):
        return []
    problems = _backbone_problems(recipe, name)
    if name == "san" and recipe.method.config.decoder:
        problems += _texture_problems(recipe)
    return problems


@hookimpl
def reid_add_commands(subparsers: Any) -> None:
    from reid_plugin_san.commands import add_commands

    add_commands(subparsers)


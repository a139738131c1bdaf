"""Hook module of reid-plugin-cut-reid: config classes and specs only, no torch import."""

from __future__ import annotations

from typing import Any

from reidcore.api import ComponentSpec, MethodNeeds, RecipeProblem, hookimpl

from reid_plugin_cut_reid.config import (
    CutReidConfig,
    FeatureMatchingConfig,
    LSGANConfig,
    PatchDiscriminatorConfig,
    PatchNCEConfig,
    ResnetGeneratorConfig,
)

REID_API_VERSION = 2

_PKG = "reid_plugin_cut_reid"
METHOD = "cut_reid"
ROLES = {"translator": "resnet_generator", "discriminator": "patch_discriminator"}

CUT_REID_NEEDS = MethodNeeds(
    # four Adams (translator, discriminator, PatchNCE heads, re-ID branch) with Synth-ReID's
    # own settings and per-epoch multistep schedules: no [train] optimization key is read
    train=(),
    train_note="cut_reid sets its own optimizers and LR schedules: use method.lr / beta1 / "
               "beta2 / weight_decay (translator, discriminator, re-ID branch), "
               "method.head_beta2 / head_weight_decay (PatchNCE heads) and "
               "method.milestones / reid_milestones / gamma (per-epoch steps)",
    roles=ROLES,
    losses=False,
    losses_note="cut_reid sets its loss weights in [method] (weight_gen, weight_dis, "
                "weight_nce, weight_idt, weight_sim, weight_x, weight_t)",
    batch=("target",),
)


@hookimpl
def reid_generators() -> list[ComponentSpec]:
    return [
        ComponentSpec(name="resnet_generator", kind="generator", config=ResnetGeneratorConfig,
                      build=f"{_PKG}.networks:build_generator",
                      example=f"{_PKG}.networks:image_example",
                      summary="ResNet encoder-decoder (ngf 64, 2 down, 9 blocks, IN, reflect "
                              "pad); Synth-ReID or anti-aliased CUT style"),
        ComponentSpec(name="patch_discriminator", kind="generator",
                      config=PatchDiscriminatorConfig,
                      build=f"{_PKG}.networks:build_discriminator",
                      example=f"{_PKG}.networks:image_example",
                      summary="PatchGAN discriminator (1x32x16 map at 256x128, Synth-ReID) "
                              "or CUT's 70x70 PatchGAN"),
    ]


@hookimpl
def reid_losses() -> list[ComponentSpec]:
    return [
        ComponentSpec(name="lsgan", kind="loss", config=LSGANConfig,
                      build=f"{_PKG}.losses:build_lsgan",
                      example=f"{_PKG}.losses:lsgan_example",
                      summary="least-squares GAN loss (generator or discriminator role)"),
        ComponentSpec(name="feature_matching", kind="loss", config=FeatureMatchingConfig,
                      build=f"{_PKG}.losses:build_feature_matching",
                      example=f"{_PKG}.losses:feature_matching_example",
                      summary="adversarial feature matching: MSE between discriminator "
                              "layer outputs (or their Gram matrices)"),
        ComponentSpec(name="patch_nce", kind="loss", config=PatchNCEConfig,
                      build=f"{_PKG}.losses:build_patch_nce",
                      example=f"{_PKG}.losses:patch_nce_example",
                      summary="CUT's PatchNCE with per-layer MLP heads, negatives from the "
                              "same image; optional identity term"),
    ]


@hookimpl
def reid_methods() -> list[ComponentSpec]:
    return [
        ComponentSpec(name=METHOD, kind="method", config=CutReidConfig,
                      build=f"{_PKG}.method:CutReid",
                      example=f"{_PKG}.method:recipe_example", needs=CUT_REID_NEEDS,
                      summary="Synth-ReID: CUT translation (PatchNCE + LSGAN + feature "
                              "matching) with a joint ResNet re-ID branch"),
    ]


@hookimpl
def reid_validate_recipe(recipe: Any, registry: Any) -> list[RecipeProblem]:
    """A cut_reid recipe, beyond what the core checks from its MethodNeeds (target data,
    no [[losses]], only the translator / discriminator roles, no [train] optimization key):
    tanh normalisation, the components that fit each role, and the evaluator's flip off
    when the method adds the flipped image's feature itself."""
    if recipe.method.name != METHOD:
        return []
    problems = []
    if recipe.loader.normalize != "tanh":
        problems.append(RecipeProblem("$.loader.normalize", f"cut_reid's generator works in "
                                      f"[-1, 1]: expected 'tanh', got "
                                      f"{recipe.loader.normalize!r}"))
    for role, section in recipe.generators.items():
        if role in ROLES and section.name != ROLES[role]:
            problems.append(RecipeProblem(f"$.generators.{role}.name", f"cut_reid's {role} "
                                          f"must be '{ROLES[role]}', got '{section.name}'"))
    if getattr(recipe.evaluate.config, "flip", False) and getattr(
            recipe.method.config, "eval_flip", False):
        problems.append(RecipeProblem("$.evaluate.flip", "cut_reid adds the flipped "
                                      "image's feature itself (method eval_flip); set the "
                                      "evaluator's flip = false"))
    return problems


@hookimpl
def reid_add_commands(subparsers: Any) -> None:
    from reid_plugin_cut_reid.commands import add_commands

    add_commands(subparsers)


"""Hook module of reid-plugin-dgnet: config classes and specs only, no torch import."""

from __future__ import annotations

from typing import Any

from reidcore.api import ComponentSpec, MethodNeeds, RecipeProblem, RunOption, hookimpl

from reid_plugin_dgnet.config import (
    DecoderConfig,
    DGNetConfig,
    DiscriminatorConfig,
    StructureEncoderConfig,
)

REID_API_VERSION = 2

_PKG = "reid_plugin_dgnet"
METHOD = "dgnet"

NEEDS = MethodNeeds(
    # the official optimizers and schedule, set in [method]: Ea by SGD (lr_ea, heads at
    # head_lr_mult, momentum, Nesterov), Es + G and D by Adam (lr_g, lr_d, beta1, beta2),
    # weight_decay for all three, LR x gamma at each of milestones (iterations); no
    # [train] optimization key is read (train.lr_mult, freeze and optimizer_impl apply)
    train=(),
    train_note="dgnet sets its own optimizers, learning rates and iteration-based LR "
               "schedule: use method.lr_ea / head_lr_mult / lr_g / lr_d, method.momentum "
               "/ weight_decay / beta1 / beta2 and method.milestones (iterations) / gamma",
    roles={"structure": "dgnet_structure_encoder", "decoder": "dgnet_decoder",
           "discriminator": "dgnet_discriminator"},
    losses=False,
    losses_note="dgnet sets its loss weights in [method] (recon_x_w, recon_id_w, gan_w, "
                "max_teacher_w, ...)",
    batch=("positives", "second"),
    flip_note="dgnet's embedding already sums the mirrored image's features (as the "
              "official test script)",
    # the teacher's soft labels are over this run's identities: same data, same labels
    runs={"teacher": RunOption(same_source=True)},
)


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
                      build=f"{_PKG}.method:DGNet", example=f"{_PKG}.method:recipe_example",
                      needs=NEEDS,
                      summary="DG-Net: joint discriminative and generative learning "
                              "(appearance/structure swaps, teacher soft labels)"),
    ]


@hookimpl
def reid_validate_recipe(recipe: Any, registry: Any) -> list[RecipeProblem]:
    """A dgnet recipe beyond what the core checks from :data:`NEEDS` (two batches with
    positives, no [[losses]], the three roles, no evaluator flip, no [train] LR key):
    erasing is the method's, never the loader's."""
    if recipe.method.name != METHOD:
        return []
    problems = []
    loader = recipe.loader
    if loader.erasing > 0:
        problems.append(RecipeProblem("$.loader.erasing", f"dgnet erases only the images Ea "
                                      f"classifies (method.erasing), never the generator's "
                                      f"targets: set loader.erasing = 0 (got "
                                      f"{loader.erasing}) and method.erasing instead"))
    return problems


@hookimpl
def reid_add_commands(subparsers: Any) -> None:
    from reid_plugin_dgnet.commands import add_commands

    add_commands(subparsers)


"""Hook module of reid-plugin-arn: config classes and specs only, no torch import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reidcore.api import ComponentSpec, MethodNeeds, RecipeProblem, RunOption, hookimpl

from reid_plugin_arn.config import (
    ArnConfig,
    ArnNetworkConfig,
    ContrastiveConfig,
    DifferenceConfig,
    IdentityPoseNetworkConfig,
    MMDConfig,
    ReconstructionConfig,
)

REID_API_VERSION = 2

_PKG = "reid_plugin_arn"
METHOD = "arn"
NETWORKS = ("arn_network", "identity_pose_network")

NEEDS = MethodNeeds(
    # one optimizer from context.make_optimizer with no options (train.optimizer, lr,
    # weight_decay, momentum) and the [train] schedule from context.make_scheduler
    train=("optimizer", "lr", "weight_decay", "momentum", "schedule", "schedule_by",
           "milestones", "gamma", "min_lr_factor", "warmup_epochs", "warmup_factor"),
    roles={"network": "arn_network"},
    losses=False,
    losses_note="arn sets its loss weights in [method] (w_cls, w_rec, w_dif, w_mmd, w_ctr)",
    runs={"pretrained": RunOption(used_when=("source_only", False))},
    # batch["target"] is read only when not source_only (the pretraining stage has no
    # target data), which MethodNeeds cannot say: reid_validate_recipe checks it
)


@hookimpl
def reid_generators() -> list[ComponentSpec]:
    return [
        ComponentSpec(name="arn_network", kind="generator", config=ArnNetworkConfig,
                      build=f"{_PKG}.networks:build_arn_network",
                      example=f"{_PKG}.networks:image_example",
                      summary="ARN: ResNet to stage 3 (E_I), three stage-4 encoders (shared "
                              "E_C, private E_S / E_T), transposed-conv image decoder"),
        ComponentSpec(name="identity_pose_network", kind="generator",
                      config=IdentityPoseNetworkConfig,
                      build=f"{_PKG}.networks:build_identity_pose_network",
                      example=f"{_PKG}.networks:image_example",
                      summary="identity + pose ResNet-50 encoders, upsampling decoder on "
                              "their concatenated maps (an ARN variant)"),
    ]


@hookimpl
def reid_losses() -> list[ComponentSpec]:
    return [
        ComponentSpec(name="arn_reconstruction", kind="loss", config=ReconstructionConfig,
                      build=f"{_PKG}.losses:build_reconstruction",
                      example=f"{_PKG}.losses:reconstruction_example",
                      summary="image L1 summed over channels / (B*H*W) (ARN's code)"),
        ComponentSpec(name="arn_difference", kind="loss", config=DifferenceConfig,
                      build=f"{_PKG}.losses:build_difference",
                      example=f"{_PKG}.losses:difference_example",
                      summary="shared vs private features: raw dot product (code) or "
                              "squared Frobenius norm of C^T P (paper)"),
        ComponentSpec(name="mmd", kind="loss", config=MMDConfig,
                      build=f"{_PKG}.losses:build_mmd", example=f"{_PKG}.losses:mmd_example",
                      summary="multi-kernel Gaussian MMD (sigma 1, 2, 10), biased, square "
                              "root; zero gradient at zero"),
        ComponentSpec(name="arn_contrastive", kind="loss", config=ContrastiveConfig,
                      build=f"{_PKG}.losses:build_contrastive",
                      example=f"{_PKG}.losses:contrastive_example",
                      summary="contrastive loss on squared distance / dim, margin 2, hinge "
                              "(code) or squared hinge"),
    ]


@hookimpl
def reid_methods() -> list[ComponentSpec]:
    return [
        ComponentSpec(name=METHOD, kind="method", config=ArnConfig,
                      build=f"{_PKG}.method:Arn", example=f"{_PKG}.method:recipe_example",
                      needs=NEEDS,
                      summary="ARN: shared / private encoders, image reconstruction, "
                              "difference, MMD, contrastive and CE losses (source-only "
                              "pretraining stage with source_only = true)"),
    ]


@hookimpl
def reid_validate_recipe(recipe: Any, registry: Any) -> list[RecipeProblem]:
    """An arn recipe (beyond what the core checks from :data:`NEEDS`): an ARN network,
    target data and a pretrained stage that exists (adaptation), tanh images for ARN's
    Tanh decoder."""
    if recipe.method.name != METHOD:
        return []
    c = recipe.method.config
    problems = []
    network = recipe.generators.get("network")
    if network is not None and network.name not in NETWORKS:
        problems.append(RecipeProblem("$.generators.network.name", f"arn's network must be "
                                      f"one of {', '.join(NETWORKS)}; got '{network.name}'"))
    if c.source_only:
        return problems
    if c.private_init == "shared" and network is not None and network.name != "arn_network":
        problems.append(RecipeProblem("$.method.private_init", f"private_init = 'shared' copies "
                                      f"E_C into E_S / E_T of an arn_network; "
                                      f"'{network.name}' has no such encoders: use 'built'"))
    if not recipe.data.target:
        problems.append(RecipeProblem("$.data.target", "arn adapts to unlabelled target "
                                      "images: add a [[data.target]] dataset (or set "
                                      "method.source_only = true for the pretraining stage)"))
    if c.pretrained and c.pretrained not in recipe.requires \
            and not Path(c.pretrained).expanduser().exists():
        roles = ", ".join(recipe.requires) or "none"
        problems.append(RecipeProblem("$.method.pretrained", f"'{c.pretrained}' is neither a "
                                      f"[requires.<role>] of this recipe (roles: {roles}) nor "
                                      f"an existing run; add [requires.{c.pretrained}] with "
                                      f"recipe = \"<a source_only arn recipe>\", or set "
                                      f"pretrained = \"\" to start from the network as built"))
    if (network is None or network.name == "arn_network") and c.w_rec > 0 \
            and recipe.loader.normalize != "tanh":
        problems.append(RecipeProblem("$.loader.normalize", f"ARN's decoder ends in Tanh and "
                                      f"reconstructs the input: expected 'tanh' (the code's "
                                      f"Normalize(0.5, 0.5)), got {recipe.loader.normalize!r}"))
    return problems

"""The core's own plugin: it registers the builtin components through the public hooks,
exactly as a third-party plugin would. Each area keeps its specs in its own
``components`` module so this file stays a table of contents."""

from __future__ import annotations

import argparse

from reidcore import hookimpl
from reidcore.registry import ComponentSpec


@hookimpl
def reid_datasets() -> list[ComponentSpec]:
    from reidcore.data.components import dataset_specs

    return dataset_specs()


@hookimpl
def reid_backbones() -> list[ComponentSpec]:
    from reidcore.models.components import backbone_specs

    return backbone_specs()


@hookimpl
def reid_losses() -> list[ComponentSpec]:
    from reidcore.losses.components import loss_specs

    return loss_specs()


@hookimpl
def reid_evaluators() -> list[ComponentSpec]:
    from reidcore.evaluation.components import evaluator_specs

    return evaluator_specs()


@hookimpl
def reid_methods() -> list[ComponentSpec]:
    from reidcore.methods.components import method_specs

    return method_specs()


@hookimpl(tryfirst=True)  # the core's commands are listed before the plugins'
def reid_add_commands(subparsers: argparse._SubParsersAction) -> None:
    from reidcore.commands import add_core_commands

    add_core_commands(subparsers)

"""Sub-commands the core adds beyond run/check/plugins/recipes (data, eval, extract).

Each area adds its parsers here through one function call, so ``reidcore.cli`` stays the
frame and the commands live next to the code they drive.
"""

from __future__ import annotations

import argparse


def add_core_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the core's area commands (``reid data ...`` and later ``eval``/``extract``)."""
    from reidcore.data.commands import add_data_commands; add_data_commands(subparsers)  # noqa: E702, I001
    from reidcore.evaluation.commands import add_eval_command; add_eval_command(subparsers)  # noqa: E501, E702, I001
    from reidcore.engine.commands import add_extract_command; add_extract_command(subparsers)  # noqa: E702, I001

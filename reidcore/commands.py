"""Sub-commands the core adds beyond run/check/plugins/recipes: data, eval, extract.

Each area registers its parsers through one function, so ``reidcore.cli`` stays the frame
and the commands live next to the code they drive.
"""

from __future__ import annotations

import argparse


def add_core_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``reid data ...``, ``reid eval``, ``reid extract``, ``reid compare``,
    ``reid export`` and ``reid explain``."""
    from reidcore.data.commands import add_data_commands
    from reidcore.engine.commands import add_eval_command, add_extract_command
    from reidcore.engine.compare import add_compare_command
    from reidcore.engine.mechanism_command import add_mechanism_command
    from reidcore.explain.commands import add_explain_command
    from reidcore.export.commands import add_export_command
    from reidcore.importers.commands import add_import_command

    add_data_commands(subparsers)
    add_eval_command(subparsers)
    add_extract_command(subparsers)
    add_compare_command(subparsers)
    add_mechanism_command(subparsers)
    add_import_command(subparsers)
    add_export_command(subparsers)
    add_explain_command(subparsers)

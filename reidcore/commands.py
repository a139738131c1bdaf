"""Sub-commands the core adds beyond run/check/plugins/recipes (data, eval, extract).

Each area adds its parsers here through one function call, so ``reidcore.cli`` stays the
frame and the commands live next to the code they drive.
"""

from __future__ import annotations

import argparse


def add_core_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the core's area commands (``reid data ...`` and later ``eval``/``extract``)."""

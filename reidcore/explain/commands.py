from __future__ import annotations

import argparse


def add_explain_command(subparsers: argparse._SubParsersAction) -> None:
    pass

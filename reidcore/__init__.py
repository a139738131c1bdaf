"""reid: a plugin-based person re-identification framework.

Plugins import :data:`hookimpl` from here and nothing from pluggy directly.
"""

from __future__ import annotations

import os
import sys

import pluggy

from reidcore.hookspecs import PROJECT_NAME

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for a plugin's hook functions: ``@reidcore.hookimpl def reid_losses(): ...``."""

__all__ = ["__version__", "hookimpl"]


def _installed_version() -> str:
    """The installed distribution's version, read from its ``METADATA`` file.

    ``importlib.metadata.version`` gives the same answer but costs 45-108 ms at every
    start (importing ``importlib.metadata`` and ``email``); this looks for
    ``reidcore-*.dist-info`` along ``sys.path`` in the same order, and falls back to
    ``importlib.metadata`` for anything unusual (an egg, a zip, no ``Version`` line).
    """
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as names:
                found = [e.name for e in names if e.name.startswith("reidcore-")
                         and e.name.endswith(".dist-info")]
        except OSError:
            continue
        if len(found) == 1:
            try:
                with open(os.path.join(entry or ".", found[0], "METADATA"),
                          encoding="utf-8") as handle:
                    for line in handle:
                        if line.startswith("Version:"):
                            return line.split(":", 1)[1].strip()
                        if not line.strip():
                            break
            except OSError:
                pass
        if found:
            break
    from importlib import metadata

    try:
        return metadata.version("reidcore")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0+unknown"


__version__ = _installed_version()

"""reid: a plugin-based person re-identification framework.

Plugins import :data:`hookimpl` from here and nothing from pluggy directly.
"""

from __future__ import annotations

from importlib import metadata

import pluggy

from reidcore.hookspecs import PROJECT_NAME

try:
    __version__ = metadata.version("reidcore")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for a plugin's hook functions: ``@reidcore.hookimpl def reid_losses(): ...``."""

__all__ = ["__version__", "hookimpl"]

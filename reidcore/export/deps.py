"""The optional ONNX dependencies, imported with a message that says how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

from reidcore.errors import ReidError

INSTALL_HINT = "pip install 'reidcore[export]'"


def require(module: str, purpose: str) -> ModuleType:
    """Import ``onnx`` or ``onnxruntime``; a missing one is a ReidError naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ReidError(f"{purpose} needs the '{module}' package, which is not installed: "
                        f"{INSTALL_HINT} (onnx and onnxruntime)") from None

"""Writing a method's inference embedding as ONNX (TorchScript-based exporter: no
``onnxscript`` needed), with dynamic batch, the run's recipe in the file's metadata (what
``reid eval`` / ``reid extract`` read back) and, when a module cannot be exported, an error
that names it."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from reidcore.errors import ReidError
from reidcore.export.deps import require
from reidcore.export.embedding import InferenceEmbedding

OPSET = 17
"""ONNX opset written: supported by every onnxruntime since 1.15 (2023) and by the
TorchScript exporter's full op coverage."""

INPUT, OUTPUT = "images", "embeddings"
METADATA_PREFIX = "reid."


@contextlib.contextmanager
def _c_stdout_discarded() -> Iterator[None]:
    """Discard what C++ writes to file descriptor 1: the TorchScript exporter's log is always
    on (``setup_onnx_logging`` tests the function ``_jit_is_onnx_log_enabled`` for truth
    instead of calling it), so a failing operator prints the whole graph to stdout."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no descriptor 1: nothing to protect
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _module_names(wrapper: InferenceEmbedding) -> dict[int, str]:
    names: dict[int, str] = {}
    for name, module in wrapper.named_modules():
        for prefix in ("networks.", "method."):
            if name.startswith(prefix):
                name = name[len(prefix):]
        if name and name not in ("networks", "method"):
            names.setdefault(id(module), name)
    return names


def _scope_of_operator(wrapper: InferenceEmbedding, dummy: torch.Tensor,
                       operator: str) -> str | None:
    """The module path of the first traced node running ``operator`` (``aten::...``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(wrapper, (dummy,), check_trace=False)
    except Exception:  # noqa: BLE001 - the caller reports the export error itself
        return None
    for node in traced.inlined_graph.nodes():
        if node.kind() == operator:
            scope = node.scopeName().split("/")[-1]
            scope = re.sub(r"^__module\.?", "", scope)
            for prefix in ("networks.", "method."):
                if scope.startswith(prefix):
                    scope = scope[len(prefix):]
            return scope or None
    return None


def blocking_module(error: BaseException, wrapper: InferenceEmbedding,
                    dummy: torch.Tensor) -> str | None:
    """Which module stopped the export: the innermost module whose ``forward`` was running
    when tracing failed, else the module whose traced graph holds the operator the
    exporter could not convert."""
    names = _module_names(wrapper)
    found = None
    frame = error.__traceback__
    while frame is not None:
        owner = frame.tb_frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and id(owner) in names:
            found = f"{names[id(owner)]} ({type(owner).__name__})"
        frame = frame.tb_next
    if found:
        return found
    match = re.search(r"operator '([\w:.]+)'", str(error))
    scope = _scope_of_operator(wrapper, dummy, match.group(1)) if match else None
    by_name = {name: module for module_id, name in names.items()
               for module in wrapper.modules() if id(module) == module_id}
    return f"{scope} ({type(by_name[scope]).__name__})" if scope in by_name else scope


def export_method(method: Any, height: int, width: int, *, flip: bool, normalise: bool,
                  opset: int = OPSET, metadata: Mapping[str, str] | None = None,
                  name: str = "method") -> bytes:
    """The serialised ONNX model of ``method``'s embedding (input ``images``: batch x 3 x
    height x width, batch dynamic; output ``embeddings``: batch x D), checked by
    ``onnx.checker``; ``metadata`` is stored as ``reid.<key>`` properties."""
    onnx = require("onnx", "ONNX export")
    for module in method.modules().values():
        module.eval()
    wrapper = InferenceEmbedding(method, flip, normalise).eval()
    dummy = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad(), _c_stdout_discarded():
            warnings.simplefilter("ignore")
            # the TorchScript exporter writes to a file object too (typed for paths only)
            torch.onnx.export(wrapper, (dummy,), buffer,  # type: ignore[arg-type]
                              dynamo=False, opset_version=opset,
                              input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                              do_constant_folding=True)
    except Exception as exc:  # noqa: BLE001 - any exporter failure becomes one message
        blocker = blocking_module(exc, wrapper, dummy)
        where = f"module '{blocker}'" if blocker else "its embed (no single module found)"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ReidError(f"{name} cannot be exported to ONNX (opset {opset}): {where} "
                        f"blocks it: {type(exc).__name__}: {first_line}") from exc
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, str(value)
    return model.SerializeToString()

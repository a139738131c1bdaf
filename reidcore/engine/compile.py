"""Opt-in ``torch.compile`` of the networks a method trains (``train.compile = true``).

A re-ID step launches hundreds of small kernels (BN, ReLU, pooling, the losses' elementwise
math); on a fast GPU the host cannot launch them as fast as the GPU runs them. Compiling
fuses them and cuts the launches. Each of the method's modules that has trainable
parameters is compiled *in place* (``nn.Module.compile``): the module object, its
``state_dict`` keys (checkpoints) and a DDP wrapper around it are unchanged; only its call
goes through the compiled graph. A method that calls parts of a network directly
(``network.encode(x)``) gets no speed-up from it for those calls.

Where compiling cannot work the run goes on eagerly and says why, once: a torch or Python
that ``torch.compile`` does not support, no C/C++ compiler (inductor builds its kernels
with one), no Triton for a CUDA device, or a failure while compiling the method's actual
network (a graph dynamo cannot trace, a compiler error) at its first call. Compiled code
computes the same functions with differently fused float arithmetic, so a compiled run is
not bit-identical to an eager one (still deterministic run to run on CPU).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import nn

_SHOWN: set[str] = set()


def say_once(log: Callable[[str], Any], message: str) -> None:
    """``log(message)`` unless this process has said it already."""
    if message not in _SHOWN:
        _SHOWN.add(message)
        log(message)


def _c_compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def unavailable_reason(device: torch.device, backend: str = "inductor") -> str | None:
    """Why ``torch.compile`` cannot work here (None: nothing known against it)."""
    if not hasattr(torch, "compile") or not hasattr(nn.Module, "compile"):
        return f"torch {torch.__version__} has no torch.compile / nn.Module.compile (2.2+)"
    try:
        from torch._dynamo.eval_frame import check_if_dynamo_supported

        check_if_dynamo_supported()
    except Exception as exc:
        return (f"torch.compile is not supported with Python {sys.version.split()[0]} and "
                f"torch {torch.__version__}: {exc}")
    if backend != "inductor":
        return None
    if device.type == "cuda":
        try:
            from torch.utils._triton import has_triton

            triton = has_triton()
        except Exception:
            triton = False
        if not triton:
            return "inductor needs Triton for a CUDA device (pip install triton)"
        if _c_compiler() is None:
            return "Triton needs a C compiler (cc, gcc or clang, or $CC) to build its launcher"
        return None
    problem = _cpp_compiler_problem()
    if problem is not None:
        return f"inductor needs a C++ compiler on CPU (g++ or clang++, or $CXX): {problem}"
    return None


def _cpp_compiler_problem() -> str | None:
    """Why inductor finds no C++ compiler (its own search), or None."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as exc:
        return _describe(exc)
    return None


def probe(device: torch.device, backend: str = "inductor") -> str | None:
    """Compile and run a tiny function on ``device``: the error that stops compiling for
    real (a broken tool chain, say) in seconds, before any network meets it."""
    try:
        function = torch.compile(lambda x: torch.relu(x * 2.0 + 1.0).sum(), backend=backend)
        with torch.no_grad():
            value = function(torch.arange(4.0, device=device) - 2.0)
        if float(value) != 4.0:  # relu([-3, -1, 1, 3]).sum()
            return f"a compiled test function gave {float(value)} instead of 4.0"
    except Exception as exc:
        return f"compiling a test function failed: {_describe(exc)}"
    return None


def _describe(exc: BaseException) -> str:
    """``Type: first line`` of the error, and of its root cause (a compiler's own message
    is wrapped in dynamo's ``BackendCompilerFailed``)."""
    def line(error: BaseException) -> str:
        lines = [text for text in str(error).strip().splitlines() if text.strip()]
        return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")

    root, seen = exc, {id(exc)}
    while True:
        inner = getattr(root, "inner_exception", None) or root.__cause__
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        root = inner
    return line(exc) if root is exc else f"{line(exc)} <- {line(root)}"


class GuardedCall:
    """A module's compiled call that falls back to the eager call, for good, the first time
    compiling fails (the reason is logged once). An error of the network itself then
    surfaces from the eager call with its usual traceback."""

    def __init__(self, module: nn.Module, name: str, compiled: Callable[..., Any],
                 log: Callable[[str], Any]):
        self.module, self.name, self.compiled, self.log = module, name, compiled, log
        self.failure: str | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failure is None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as exc:
                self.failure = _describe(exc)
                self.module._compiled_call_impl = None
                say_once(self.log, f"train.compile: compiling '{self.name}' failed "
                                   f"({self.failure}); it runs eagerly")
        return self.module._call_impl(*args, **kwargs)


@attrs.define
class CompileResult:
    """What :func:`compile_networks` did: compiled names, skipped ones and why."""

    compiled: list[str] = attrs.field(factory=list)
    skipped: dict[str, str] = attrs.field(factory=dict)
    reason: str | None = None
    """Why nothing was compiled (compiling unavailable), or None."""

    def record(self) -> dict[str, Any]:
        return {"compiled": list(self.compiled), "skipped": dict(self.skipped),
                "unavailable": self.reason}


def compile_networks(modules: Mapping[str, nn.Module], device: torch.device,
                     names: Sequence[str] = (), mode: str | None = None,
                     backend: str = "inductor", log: Callable[[str], Any] = print,
                     check: bool = True) -> CompileResult:
    """Compile in place each module of ``modules`` (a method's ``modules()``) that has
    trainable parameters, or those in ``names``; see the module docstring. ``check``
    runs :func:`unavailable_reason` first (cheap; :func:`probe` costs a real compile, so
    it is left to callers that want the check): when compiling cannot work, nothing
    changes and the reason is logged once. A failure at a network's first compiled call
    falls back to eager (:class:`GuardedCall`)."""
    device = torch.device(device)
    unknown = [n for n in names if n not in modules]
    if unknown:
        from reidcore.errors import ReidError

        raise ReidError(f"train.compile_modules names {unknown}, but the method's modules "
                        f"are {sorted(modules)}")
    result = CompileResult()
    if check:
        result.reason = unavailable_reason(device, backend)
        if result.reason is not None:
            say_once(log, f"train.compile: not compiling ({result.reason}); the run goes on "
                          "eagerly")
            return result
    for name, module in modules.items():
        if names and name not in names:
            result.skipped[name] = "not in train.compile_modules"
            continue
        if not names and not any(p.requires_grad for p in module.parameters()):
            result.skipped[name] = "no trainable parameters"
            continue
        compiled = torch.compile(module._call_impl, mode=mode, backend=backend)
        module._compiled_call_impl = GuardedCall(module, name, compiled, log)
        result.compiled.append(name)
    if result.compiled:
        log(f"train.compile: compiling {', '.join(result.compiled)} ({backend}"
            f"{', mode ' + mode if mode else ''}) at the first call")
    return result


def uncompile(modules: Mapping[str, nn.Module]) -> None:
    """Back to eager calls (e.g. before exporting a network)."""
    for module in modules.values():
        module._compiled_call_impl = None

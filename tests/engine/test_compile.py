"""train.compile: networks compiled in place, a clear fallback where compiling cannot work.

The tests compile with dynamo's ``eager`` backend (graph capture without code generation:
no C++ compiler run, seconds not minutes); inductor itself is exercised by
benchmarks/train_gpu.py --compile.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reidcore.engine import compile as rc
from reidcore.errors import ReidError


def _method_modules() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 5))
    return {"network": network, "losses": nn.CrossEntropyLoss()}


@pytest.fixture(autouse=True)
def _fresh():
    rc._SHOWN.clear()
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_in_place_same_outputs_same_state_dict_keys():
    modules = _method_modules()
    reference = _method_modules()
    keys = list(modules["network"].state_dict())
    logged: list[str] = []
    result = rc.compile_networks(modules, torch.device("cpu"), backend="eager",
                                 log=logged.append, check=False)
    assert result.compiled == ["network"]
    assert result.skipped == {"losses": "no trainable parameters"}
    assert list(modules["network"].state_dict()) == keys  # checkpoints unchanged
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(1))
    out = modules["network"](x)
    assert isinstance(modules["network"]._compiled_call_impl, rc.GuardedCall)
    assert modules["network"]._compiled_call_impl.failure is None
    assert torch.equal(out, reference["network"](x))  # eager backend: the same aten ops
    out.sum().backward()
    assert modules["network"][0].weight.grad is not None
    assert logged and "network" in logged[0]
    rc.uncompile(modules)
    assert modules["network"]._compiled_call_impl is None


def test_failure_at_first_call_falls_back_to_eager_and_says_so_once():
    def broken(graph, example_inputs):
        raise RuntimeError("cc1plus: fatal error: Python.h: No such file or directory")

    modules = _method_modules()
    reference = _method_modules()
    logged: list[str] = []
    rc.compile_networks(modules, torch.device("cpu"), backend=broken, log=logged.append,
                        check=False)
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(2))
    for _ in range(3):
        assert torch.equal(modules["network"](x), reference["network"](x))
    failures = [m for m in logged if "failed" in m]
    assert len(failures) == 1 and "Python.h" in failures[0] and "eagerly" in failures[0]
    assert modules["network"]._compiled_call_impl is None  # eager for good


def test_unavailable_compiler_compiles_nothing_and_says_why_once(monkeypatch):
    monkeypatch.setattr(rc, "_cpp_compiler_problem", lambda: "InvalidCxxCompiler: g++ not found")
    modules = _method_modules()
    logged: list[str] = []
    for _ in range(2):
        result = rc.compile_networks(modules, torch.device("cpu"), log=logged.append)
        assert result.compiled == [] and "C++ compiler" in result.reason
    assert len(logged) == 1 and "g++ not found" in logged[0] and "eagerly" in logged[0]
    assert modules["network"]._compiled_call_impl is None
    assert result.record()["unavailable"] == result.reason


def test_unsupported_python_is_named(monkeypatch):
    import torch._dynamo.eval_frame as eval_frame

    def unsupported():
        raise RuntimeError("Python 3.14+ not yet supported for torch.compile")

    monkeypatch.setattr(eval_frame, "check_if_dynamo_supported", unsupported)
    reason = rc.unavailable_reason(torch.device("cpu"))
    assert reason is not None and "Python" in reason and "3.14+" in reason


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without Triton/CUDA")
def test_cuda_without_triton_is_named(monkeypatch):
    import torch.utils._triton as triton

    monkeypatch.setattr(triton, "has_triton", lambda: False)
    assert "Triton" in rc.unavailable_reason(torch.device("cuda"))


def test_unknown_module_names_are_a_reid_error():
    with pytest.raises(ReidError, match="compile_modules names \\['netwrok'\\]"):
        rc.compile_networks(_method_modules(), torch.device("cpu"), names=["netwrok"],
                            check=False)

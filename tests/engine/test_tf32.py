"""The TF32 policy: on by default for CUDA GPUs that have it, never touching a CPU run."""

from __future__ import annotations

import pytest
import torch

from reidcore.engine import tf32


@pytest.fixture
def restore_flags():
    """The tests set backend flags: put the torch defaults back through the same API."""
    before = tf32.tf32_flags()
    yield
    tf32.restore_flags(before)


@pytest.mark.parametrize(("policy", "device", "capability", "enabled"), [
    ("auto", "cuda", (9, 0), True),    # H100/H200
    ("auto", "cuda", (8, 0), True),    # A100: the first with TF32
    ("auto", "cuda", (7, 5), False),   # T4: none
    ("on", "cuda", (7, 0), False),     # V100: asked, cannot
    ("on", "cuda", (8, 6), True),
    ("off", "cuda", (9, 0), False),
    ("auto", "cpu", None, False),
    ("on", "cpu", None, False),
])
def test_decision_table(policy, device, capability, enabled):
    decision = tf32.decide(policy, device, capability, "GPU")
    assert decision.enabled is enabled
    assert decision.reason  # the manifest says why, every time


def test_reasons_name_the_cause():
    assert "cannot apply" in tf32.decide("on", "cuda", (7, 0)).reason
    assert "8.0" in tf32.decide("auto", "cuda", (7, 5)).reason
    assert "IEEE" in tf32.decide("off", "cuda", (9, 0)).reason
    with pytest.raises(ValueError, match="auto, on, off"):
        tf32.decide("yes", "cuda", (9, 0))


def test_cpu_run_leaves_the_flags_alone(restore_flags):
    before = tf32.tf32_flags()
    decision = tf32.apply("on", torch.device("cpu"))
    assert not decision.enabled and not decision.applied
    assert tf32.tf32_flags() == before
    assert decision.record()["flags"] is None


def test_set_tf32_sets_matmul_and_conv_together(restore_flags):
    tf32.set_tf32(True)
    on = tf32.tf32_flags()
    tf32.set_tf32(False)
    off = tf32.tf32_flags()
    assert on != off
    assert on["matmul"] == on["conv"] and off["matmul"] == off["conv"]
    assert on["matmul"] in ("tf32", True) and off["matmul"] in ("ieee", False)


def test_a_cpu_run_records_its_tf32_and_compile_decisions(tmp_path):
    import json

    from reidcore.engine.runner import run_recipe
    from reidcore.plugins import get_plugins
    from tests.engine.conftest import fast_recipe_dict, resolve_dict

    run_recipe(resolve_dict(fast_recipe_dict(tmp_path / "data", epochs=1)), get_plugins(),
               out=tmp_path / "run", quiet=True)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["tf32"]["enabled"] is False and "cpu device" in manifest["tf32"]["reason"]
    assert manifest["compile"] == {"compiled": [], "skipped": {}, "unavailable": None}


def test_optimizer_kernels_are_fused_on_cuda_only():
    from reidcore.engine.optim import implementation_options

    cpu = [torch.nn.Parameter(torch.zeros(2))]
    assert implementation_options("auto", cpu) == {}  # CPU runs keep PyTorch's default
    assert implementation_options("foreach", cpu) == {"foreach": True}
    assert implementation_options("for-loop", cpu) == {"foreach": False}
    assert implementation_options("fused", cpu) == {"fused": True}

"""The TF32 policy of a run: fp32 matrix products and convolutions on tensor cores.

On NVIDIA GPUs of compute capability 8.0 and newer (Ampere, Hopper, ...), TF32 runs fp32
matmuls and convolutions on tensor cores with a 10-bit mantissa: several times faster, and
the difference in a re-ID training is noise (the same as fast-reid's and timm's defaults).
PyTorch's own defaults are mixed (cuDNN convolutions use TF32, cuBLAS matmuls do not), so
the engine sets both explicitly and records the choice in the run's manifest.

``train.tf32``: ``"auto"`` (default) turns it on for a CUDA device that has it, ``"on"``
asks for it (a GPU without it says so), ``"off"`` keeps full IEEE fp32 everywhere. It
affects the fp32 operations of a run: all of them with ``precision = "fp32"``, the few
that autocast keeps in fp32 with bf16/fp16. A CPU run is never touched (its flags are left
as they are), so CPU results do not depend on this setting.

PyTorch 2.9 replaced ``allow_tf32`` by ``fp32_precision`` and refuses a mix of the two
APIs, so both reading and writing go through whichever one this torch has.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

POLICIES = ("auto", "on", "off")
MIN_CAPABILITY = (8, 0)


@attrs.define(frozen=True)
class TF32Decision:
    """Whether TF32 is on for this run, and why (both go into ``manifest.json``)."""

    enabled: bool
    reason: str
    applied: bool = False
    """Whether the backend flags were set (never on a CPU device)."""

    def record(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "reason": self.reason, "flags": tf32_flags()
                if self.applied else None}


def decide(policy: str, device_type: str, capability: tuple[int, int] | None = None,
           name: str = "") -> TF32Decision:
    """The decision for ``policy`` on a device (``capability``: CUDA compute capability)."""
    if policy not in POLICIES:
        raise ValueError(f"train.tf32 must be one of {', '.join(POLICIES)}, got {policy!r}")
    if device_type != "cuda":
        return TF32Decision(False, f"{device_type} device: TF32 is a CUDA tensor-core mode")
    where = f"{name + ' ' if name else ''}(compute capability "
    where += f"{capability[0]}.{capability[1]})" if capability else "unknown)"
    if policy == "off":
        return TF32Decision(False, "train.tf32 = \"off\": full IEEE fp32 matmuls and "
                                   "convolutions")
    if capability is None or tuple(capability) < MIN_CAPABILITY:
        return TF32Decision(False, f"{where} has no TF32 (it needs compute capability "
                                   f"{MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]}, Ampere or newer)"
                                   + ("; train.tf32 = \"on\" cannot apply" if policy == "on"
                                      else ""))
    return TF32Decision(True, f"train.tf32 = \"{policy}\": fp32 matmuls and convolutions on "
                              f"TF32 tensor cores on {where}")


def _new_api() -> bool:
    return hasattr(torch.backends.cuda.matmul, "fp32_precision")


def set_tf32(enabled: bool) -> None:
    """Set cuBLAS matmuls and cuDNN convolutions to TF32 (or full IEEE fp32)."""
    if _new_api():
        value = "tf32" if enabled else "ieee"
        torch.backends.cuda.matmul.fp32_precision = value
        torch.backends.cudnn.conv.fp32_precision = value  # type: ignore[attr-defined]
    else:  # PyTorch before 2.9
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def tf32_flags() -> dict[str, Any]:
    """The backend flags as they are now, read through the API this torch uses."""
    if _new_api():
        return {"matmul": torch.backends.cuda.matmul.fp32_precision,
                "conv": torch.backends.cudnn.conv.fp32_precision}  # type: ignore[attr-defined]
    return {"matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "conv": bool(torch.backends.cudnn.allow_tf32)}


def restore_flags(flags: dict[str, Any]) -> None:
    """Put back flags read by :func:`tf32_flags` (through the same API)."""
    if _new_api():
        torch.backends.cuda.matmul.fp32_precision = flags["matmul"]
        torch.backends.cudnn.conv.fp32_precision = flags["conv"]  # type: ignore[attr-defined]
    else:
        torch.backends.cuda.matmul.allow_tf32 = flags["matmul"]
        torch.backends.cudnn.allow_tf32 = flags["conv"]


def apply(policy: str, device: torch.device) -> TF32Decision:
    """Decide for ``device`` and set the flags on a CUDA device; a CPU run changes nothing."""
    device = torch.device(device)
    if device.type != "cuda":
        return decide(policy, device.type)
    capability = tuple(torch.cuda.get_device_capability(device))
    decision = decide(policy, "cuda", capability,  # type: ignore[arg-type]
                      torch.cuda.get_device_name(device))
    set_tf32(decision.enabled)
    return attrs.evolve(decision, applied=True)

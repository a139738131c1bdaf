"""The ``[train]`` section of a recipe: what the engine needs to run the loop.

Learning rates follow ``lr * lr_mult[group] * factor(t)``, where ``t`` is the epoch (an
integer with ``schedule_by = "epoch"``, fractional ``step / steps_per_epoch`` with
``"step"``) and ``factor`` is the warm-up (linear from ``warmup_factor`` to 1 over
``warmup_epochs``) times the schedule: ``multistep`` (x ``gamma`` at each of
``milestones``), ``cosine`` (from 1 after warm-up to ``min_lr_factor`` at the end) or
``constant``.
"""

from __future__ import annotations

from typing import Literal

import attrs


def _non_negative(_instance, attribute, value) -> None:
    if value < 0:
        raise ValueError(f"'{attribute.name}' must be >= 0: {value}")


def _positive(_instance, attribute, value) -> None:
    if value <= 0:
        raise ValueError(f"'{attribute.name}' must be > 0: {value}")


def _fraction(_instance, attribute, value) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"'{attribute.name}' must be in [0, 1]: {value}")


def _sorted_milestones(_instance, attribute, value) -> None:
    if list(value) != sorted(value) or any(m < 0 for m in value):
        raise ValueError(f"'{attribute.name}' must be increasing epochs >= 0: {value}")


@attrs.define
class TrainConfig:
    """Loop length, device, optimisation, checkpoints and the evaluation schedule."""

    epochs: int = attrs.field(default=60, validator=attrs.validators.ge(1))
    device: Literal["auto", "cpu", "cuda"] = "auto"
    steps_per_epoch: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """Steps (batches) per epoch; 0: one pass of the sampler over the training data. Set it
    for iteration-based training (e.g. FlipReID's 200-step epochs, DG-Net's iterations):
    the sampler then draws further passes within each epoch, and the clock, the LR
    schedules and ``context.steps_per_epoch`` count epochs of exactly this length."""
    eval_every: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    """Evaluate every N epochs (and always after the last one)."""

    # optimisation (methods build their optimizers through the engine's helpers)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = attrs.field(default=3.5e-4, validator=_positive)
    weight_decay: float = attrs.field(default=5e-4, validator=_non_negative)
    momentum: float = attrs.field(default=0.9, validator=_fraction)
    """SGD momentum (Adam uses betas 0.9, 0.999)."""
    lr_mult: dict[str, float] = attrs.field(factory=dict)
    """Per parameter-group LR multipliers, e.g. ``{ classifier = 10.0 }`` (the method names
    its groups; the baseline's are backbone, neck, classifier, embedding)."""
    schedule: Literal["multistep", "cosine", "constant"] = "multistep"
    schedule_by: Literal["epoch", "step"] = "epoch"
    milestones: list[int] = attrs.field(factory=lambda: [40, 70], validator=_sorted_milestones)
    gamma: float = attrs.field(default=0.1, validator=_positive)
    min_lr_factor: float = attrs.field(default=0.0, validator=_fraction)
    warmup_epochs: float = attrs.field(default=10.0, validator=_non_negative)
    warmup_factor: float = attrs.field(default=0.1, validator=_fraction)
    clip_grad_norm: float = attrs.field(default=0.0, validator=_non_negative)
    """Clip each optimizer's gradients to this total norm (0 = off)."""
    freeze: list[str] = attrs.field(factory=lambda: ["backbone"])
    """Parameter groups frozen during the first ``freeze_epochs`` epochs."""
    freeze_epochs: int = attrs.field(default=0, validator=attrs.validators.ge(0))

    # numerics
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Mixed precision on CUDA (fp16 uses a gradient scaler); CPU runs stay fp32."""
    channels_last: bool = False
    tf32: Literal["auto", "on", "off"] = "auto"
    """fp32 matmuls and convolutions on TF32 tensor cores: ``auto`` turns them on on CUDA
    GPUs that have them (compute capability >= 8.0); CPU runs are never affected. The
    decision is recorded in ``manifest.json``."""
    compile: bool = False
    """``torch.compile`` the method's trainable networks (opt-in: the first steps pay the
    compilation). Where compiling cannot work (no C compiler, no Triton, Python version)
    the reason is printed once and the run goes on eagerly."""
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    compile_modules: list[str] = attrs.field(factory=list)
    """Only these of the method's modules (default: every module with trainable
    parameters)."""
    optimizer_impl: Literal["auto", "fused", "foreach", "for-loop"] = "auto"
    """Adam/AdamW/SGD kernels: ``auto`` is ``fused`` when every parameter is on a CUDA
    device (one kernel per step), else PyTorch's default (CPU runs unchanged)."""
    deterministic: bool = True
    """Deterministic algorithms (cuDNN) where available; seeding is always on."""
    nonfinite: Literal["stop", "skip"] = "stop"
    """What a non-finite loss (``loss`` or a ``loss/<term>`` a step reports) does:
    ``stop`` ends the run at once, naming the step, the loss terms and the last good
    checkpoint; ``skip`` skips such steps as AMP's gradient scaler does (no optimizer step
    with non-finite gradients, BatchNorm statistics of the step restored), counts them
    and logs them. ``skip`` checks the gradients once per optimizer step (one
    device-to-host sync); ``stop`` adds no sync: it reads the values the step returns."""

    # bookkeeping
    log_every: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    """Write step metrics (TensorBoard, hooks' consumers) every N steps."""
    checkpoint_every: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    keep_last: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    """Epoch checkpoints kept (``best.pt``, the best by mAP, is kept besides)."""
    best_metric: str = "mAP"
    """Metric (of the first test set) that chooses ``best.pt``."""
    ranked_pictures: int = attrs.field(default=8, validator=attrs.validators.ge(0))
    """Queries shown in the ranked-results picture of the final evaluation (0 = none)."""
    mechanism_samples: int = attrs.field(default=16, validator=attrs.validators.ge(0))
    """Images (or pairs) on which the final evaluation measures a method's mechanism
    against the synthetic data's ground truth, when the method has a capability
    (``swap``, ``translate``, ``estimate_texture``) and its data is the built-in synthetic
    data (:mod:`reidcore.engine.mechanism`); 0 = off. Written to ``summary.json``
    (``mechanism``), TensorBoard and ``mechanism_<capability>.png``."""
    mlflow: str = ""
    """Also record the run in MLflow (the optional extra ``reidcore[mlflow]``; TensorBoard
    stays): ``""`` off; ``"local"`` a local store beside the run directory (``mlflow.db``
    and ``mlartifacts/`` in its parent folder: no server needed); else a tracking URI
    (``sqlite:///path.db``, ``http://host:5000``). Params are the resolved recipe, metrics
    what TensorBoard gets, artifacts the run directory's recipe, manifest, summary, metrics
    and pictures."""

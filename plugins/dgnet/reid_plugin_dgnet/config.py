"""Recipe options of the plugin's components (attrs only: no torch import).

Defaults are the paper-size networks and the official ``configs/latest.yaml`` of DG-Net
(Market-1501); a CPU recipe shrinks widths and iterations through these same keys.
"""

from __future__ import annotations

from typing import Literal

import attrs

_ge1 = attrs.validators.ge(1)


def _non_negative(_instance, attribute, value) -> None:
    if value < 0:
        raise ValueError(f"'{attribute.name}' must be >= 0: {value}")


def _probability(_instance, attribute, value) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"'{attribute.name}' must be in [0, 1]: {value}")


def _increasing(_instance, attribute, value) -> None:
    if list(value) != sorted(value) or any(v < 0 for v in value):
        raise ValueError(f"'{attribute.name}' must be increasing iterations >= 0: {value}")


# --- networks -----------------------------------------------------------------------------


@attrs.define
class StructureEncoderConfig:
    """Es (``dgnet_structure_encoder``): grayscale image -> structure code ``8*dim`` x H/4 x W/4.

    Four conv blocks (``dim``, ``2dim``, ``2dim``, ``4dim``; strides 2, 1, 1, 2), ``res_blocks``
    residual blocks at ``4dim`` and the ASPP block of the official code (output ``8dim``;
    ``aspp = false`` leaves it out as the paper describes, output ``4dim``)."""

    dim: int = attrs.field(default=16, validator=_ge1)
    res_blocks: int = attrs.field(default=4, validator=_ge1)
    aspp: bool = True
    dilations: list[int] = attrs.field(factory=lambda: [3, 6, 9])
    """ASPP's dilation rates: reflection padding needs each below the structure map's
    width (W/4), so images narrower than 4 * 10 pixels need smaller rates."""
    input_channels: int = attrs.field(default=1, validator=_ge1)

    @property
    def output_channels(self) -> int:
        return self.dim * (8 if self.aspp else 4)


@attrs.define
class DecoderConfig:
    """G (``dgnet_decoder``): structure code (``dim`` channels) + appearance code -> image.

    ``res_blocks`` residual blocks with AdaIN at ``dim`` channels, two x2 up-samplings
    (5x5 conv + LayerNorm, halving the channels), two 3x3 convs and a 1x1 conv to 3
    channels (no tanh: the output lives in the loader's normalised space). The
    ``code_dim``-long appearance code is cut into ``res_blocks`` chunks; each drives one
    residual block through two MLPs (``mlp_dim`` hidden) giving its AdaIN scales and
    biases."""

    dim: int = attrs.field(default=128, validator=_ge1)
    res_blocks: int = attrs.field(default=4, validator=_ge1)
    code_dim: int = attrs.field(default=8192, validator=_ge1)
    mlp_dim: int = attrs.field(default=512, validator=_ge1)

    def __attrs_post_init__(self) -> None:
        if self.code_dim % self.res_blocks:
            raise ValueError(f"'code_dim' ({self.code_dim}) must be divisible by "
                             f"'res_blocks' ({self.res_blocks}): one chunk per block")
        if self.dim % 4:
            raise ValueError(f"'dim' ({self.dim}) must be divisible by 4 (two halvings)")


@attrs.define
class DiscriminatorConfig:
    """D (``dgnet_discriminator``): ``scales`` PatchGAN discriminators on an image pyramid
    (3x3 avg-pool, stride 2, between scales), each: 1x1 conv to ``dim``, ``layers``
    stride-2 stages (3x3 s1 + 3x3 s2 convs), ``res_blocks`` residual blocks and a 1x1 conv
    to one channel; LeakyReLU 0.2, no normalisation, reflection padding."""

    dim: int = attrs.field(default=32, validator=_ge1)
    layers: int = attrs.field(default=2, validator=_ge1)
    res_blocks: int = attrs.field(default=4, validator=attrs.validators.ge(0))
    scales: int = attrs.field(default=3, validator=_ge1)
    input_channels: int = attrs.field(default=3, validator=_ge1)


# --- the method ---------------------------------------------------------------------------


@attrs.define
class DGNetConfig:
    """The ``dgnet`` method: Ea (``[backbone]`` trunk + two heads), Es, G, D (``[generators.*]``).

    Iterations are the engine's steps (``train.epochs`` x ``train.steps_per_epoch``); every
    iteration-valued key (``warm_iter``, ``milestones``) counts them. Loss weights follow
    ``configs/latest.yaml``; the ramped weights are ``min(max, warm_scale * (t - warm))``
    for iteration ``t > warm``."""

    teacher: str = "teacher"
    """The teacher run: a ``[requires.<role>]`` role, a run directory or a checkpoint file."""
    teacher_bn: Literal["train", "eval"] = "train"
    """The official code runs the frozen teacher's BatchNorm on batch statistics."""
    teacher_dropout: Literal["off", "after_first_grid"] = "off"
    """``off`` (ours): the teacher's soft labels never see dropout. ``after_first_grid``:
    the official behaviour, where the first image dump (``sample()`` ends with ``train()``
    on the whole trainer) leaves the teacher in train mode, dropout on, for every later
    iteration; here from the iteration after the first swap grid (``log_images_every``)."""
    stripes: int = attrs.field(default=4, validator=_ge1)
    """Horizontal stripes of the appearance code (max-pooled): code = channels x stripes."""
    bottleneck: int = attrs.field(default=512, validator=_ge1)
    primary_dropout: float = attrs.field(default=0.5, validator=_probability)
    fine_dropout: float = attrs.field(default=0.75, validator=_probability)
    erasing: float = attrs.field(default=0.5, validator=_probability)
    """Random erasing probability of the images Ea classifies (not of the generator's)."""

    recon_x_w: float = attrs.field(default=5.0, validator=_non_negative)
    recon_xp_w: float = attrs.field(default=5.0, validator=_non_negative)
    id_w: float = attrs.field(default=1.0, validator=_non_negative)
    pid_w: float = attrs.field(default=1.0, validator=_non_negative)
    recon_id_w: float = attrs.field(default=0.5, validator=_non_negative)
    gan_w: float = attrs.field(default=1.0, validator=_non_negative)
    r1_w: float = attrs.field(default=0.01, validator=_non_negative)
    fine_w: float = attrs.field(default=0.2, validator=_non_negative)
    """alpha = lambda_fine / lambda_prim (the config's ``B_w``)."""
    warm_iter: int = attrs.field(default=30000, validator=_non_negative)
    warm_teacher_iter: int = attrs.field(default=30000, validator=_non_negative)
    warm_scale: float = attrs.field(default=0.0005, validator=_non_negative)
    max_w: float = attrs.field(default=1.0, validator=_non_negative)
    max_cyc_w: float = attrs.field(default=2.0, validator=_non_negative)
    max_teacher_w: float = attrs.field(default=2.0, validator=_non_negative)
    encoder_again: float = attrs.field(default=0.5, validator=_probability)
    """Probability that the code reconstruction trains Es on detached generated images
    (else a frozen Es copy on the generated images trains G)."""

    lr_ea: float = attrs.field(default=0.002, validator=_non_negative)
    head_lr_mult: float = attrs.field(default=10.0, validator=_non_negative)
    momentum: float = attrs.field(default=0.9, validator=_non_negative)
    lr_g: float = attrs.field(default=1e-4, validator=_non_negative)
    lr_d: float = attrs.field(default=1e-4, validator=_non_negative)
    beta1: float = attrs.field(default=0.0, validator=_probability)
    beta2: float = attrs.field(default=0.999, validator=_probability)
    weight_decay: float = attrs.field(default=5e-4, validator=_non_negative)
    milestones: list[int] = attrs.field(factory=lambda: [60000, 90000, 105000],
                                        validator=_increasing)
    gamma: float = attrs.field(default=0.1, validator=_non_negative)

    log_images_every: int = attrs.field(default=5000, validator=_non_negative)
    """Write a swap grid every this many iterations (and after the last); 0 = only last."""
    swap_images: int = attrs.field(default=6, validator=_ge1)

    def __attrs_post_init__(self) -> None:
        if self.teacher_dropout == "after_first_grid" and self.log_images_every == 0:
            raise ValueError("'teacher_dropout' = \"after_first_grid\" needs "
                             "'log_images_every' > 0 (the official first image dump is at "
                             "its image_save_iter, 5000): set log_images_every")

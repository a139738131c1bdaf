"""Recipe options of the plugin's components (attrs only: no torch import).

Defaults follow the official SAN code (microsoft/Semantics-Aligned-Representation-Learning-
for-Person-Re-identification, ``main.py`` and ``args.py``) unless a docstring says otherwise.
"""

from __future__ import annotations

from typing import Literal

import attrs

_positive = attrs.validators.gt(0)
_non_negative = attrs.validators.ge(0)
_fraction = attrs.validators.and_(attrs.validators.ge(0.0), attrs.validators.lt(1.0))


def _increasing(_instance, attribute, value) -> None:
    if list(value) != sorted(value) or any(v < 0 for v in value):
        raise ValueError(f"'{attribute.name}' must be increasing epochs >= 0: {value}")


def _channels(count: int):
    def check(_instance, attribute, value) -> None:
        if len(value) != count or any(int(v) < 1 for v in value):
            raise ValueError(f"'{attribute.name}' must be {count} channel counts >= 1: {value}")
    return check


# --- networks -----------------------------------------------------------------------------


@attrs.define
class SADecoderConfig:
    """SA-Dec, the U-Net-like texture decoder (``sa_decoder``), on the four stage maps of a
    ResNet-style encoder with last stride 1.

    ``encoder_channels``: channels of layer1..layer4 (ResNet-50: 256, 512, 1024, 2048).
    ``widths``: w0..w4 of the decoder: reduce(layer4) and embed(layer3) to w0, up-blocks
    w0->w1 (+ embed(layer2) to w1), w1->w2 (+ embed(layer1) to w2), w2->w3, w3->w4, then a
    7x7 conv to 3 channels. The defaults are the official decoder (9,071,075 parameters);
    smaller widths only for CPU-sized recipes. The output is resized (bilinear,
    align_corners) to the texture size the method asks for (the loader's texture size),
    by default the decoder's map with its width doubled (256x128 -> 256x256, as the code).
    """

    encoder_channels: list[int] = attrs.field(factory=lambda: [256, 512, 1024, 2048],
                                              validator=_channels(4))
    widths: list[int] = attrs.field(factory=lambda: [512, 256, 64, 32, 16],
                                    validator=_channels(5))
    init_gain: float = attrs.field(default=0.02, validator=_positive)
    """Xavier-normal gain of the convolutions, and the std of BN weights around 1."""


# --- losses -------------------------------------------------------------------------------


@attrs.define
class TextureL1Config:
    """L_Rec (``texture_l1``): mean absolute error between ``outputs[input]`` (the decoded
    texture) and ``batch[target]`` (the texture target), both in [-1, 1]."""

    input: str = "texture"
    target: str = "textures"


@attrs.define
class TextureTripletConfig:
    """L_TR (``texture_triplet``): the official code's triplet constraints on the four
    decoder maps ``outputs[input]`` with its fixed P x K index pairing (no mining).

    With d(x, y) = mean((x - y)^2) and group starts i = 0, K, ..., B - 2K:
    s1 [d(i, i+1) - d(i, i+K) + m]+, s2 [d(i+1, i+2) - d(i+1, i+K+1) + m]+,
    s3 [d(i+2, i+3) - d(i+2, i+K+2) + m]+, s4 [d(i, i+3) - d(i+3, i+K) + m]+, summed over
    groups and levels (K = 4 gives the code's offsets). The batch must hold ``instances``
    consecutive images per identity (``loader.sampler = "pk"``); the pids are checked.
    """

    instances: int = attrs.field(default=4, validator=attrs.validators.ge(4))
    margin: float = attrs.field(default=0.3, validator=_non_negative)
    input: str = "decoder_maps"


# --- methods ------------------------------------------------------------------------------

TextureSource = Literal["dataset", "folder", "san_pg"]


@attrs.define
class SanConfig:
    """The ``san`` method: SA-Enc (re-ID) jointly trained with SA-Dec (texture regression).

    Networks: ``[backbone]`` (a ResNet-style core backbone, last stride 1; default timm
    ``resnet50``) + fc block (Linear to ``embedding_dim`` + BN + ReLU = v) + classifier, and
    ``[generators.decoder]`` (default ``sa_decoder``). Re-ID losses: the recipe's
    ``[[losses]]`` on ``logits`` / ``features`` (v), default label-smoothed CE + batch-hard
    triplet (weights 1). Decoder losses: ``weight_rec`` * L_Rec + ``weight_tr`` * L_TR.

    Texture targets (``textures``):
    ``dataset``: ``loader.textures = true`` loads each record's ``extras["texture"]`` (the
    synthetic generator's true textures, PIT); ``folder``: a folder written by
    ``reid san-textures`` (``texture_root``); ``san_pg``: the method writes the pseudo
    textures itself with the SAN-PG run ``san_pg`` (a ``[requires.<role>]`` role or a run
    directory) into ``texture_root`` (default ``<run dir>/textures``) before its first
    step, skipping those already written, then reads them as ``folder``.
    ``decoder = false``: SAN without SA-Dec (the re-ID baseline, no texture needed).

    Optimisation (the method's own: a recipe setting ``[train]``'s optimizer, lr,
    weight_decay, schedule, ... is refused by ``reid check``; ``epochs`` =
    ``warmup_epochs`` + the main epochs): ``warmup_epochs`` with plain Adam at
    ``warmup_lr * warmup_growth ** epoch``, then Adam(amsgrad) at ``lr`` x ``gamma`` per
    ``milestones`` (counted from the end of the warm-up), fresh state; both with
    ``weight_decay`` on every encoder parameter. The decoder-side update uses two
    constant-LR Adams (``decoder_lr``, betas (``decoder_beta1``, ``decoder_beta2``), no
    weight decay): one on the encoder trunk (fc and classifier frozen), one on SA-Dec.
    """

    embedding_dim: int = attrs.field(default=512, validator=attrs.validators.ge(1))
    decoder: bool = True
    textures: TextureSource = "dataset"
    texture_root: str = ""
    san_pg: str = "san_pg"
    """The SAN-PG run for ``textures = "san_pg"``: a ``[requires.<role>]`` role or a run."""
    weight_rec: float = attrs.field(default=1.0, validator=_non_negative)
    weight_tr: float = attrs.field(default=1.0, validator=_non_negative)
    tr_margin: float = attrs.field(default=0.3, validator=_non_negative)
    lr: float = attrs.field(default=8e-4, validator=_positive)
    weight_decay: float = attrs.field(default=5e-4, validator=_non_negative)
    beta1: float = attrs.field(default=0.9, validator=_fraction)
    beta2: float = attrs.field(default=0.999, validator=_fraction)
    amsgrad: bool = True
    milestones: list[int] = attrs.field(factory=lambda: [40, 80, 120, 160, 200, 240, 280],
                                        validator=_increasing)
    gamma: float = attrs.field(default=0.5, validator=_positive)
    warmup_epochs: int = attrs.field(default=20, validator=attrs.validators.ge(0))
    warmup_lr: float = attrs.field(default=8e-6, validator=_positive)
    warmup_growth: float = attrs.field(default=1.259, validator=_positive)
    decoder_lr: float = attrs.field(default=1e-5, validator=_positive)
    decoder_beta1: float = attrs.field(default=0.5, validator=_fraction)
    decoder_beta2: float = attrs.field(default=0.999, validator=_fraction)
    log_images_every: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """Every N epochs (and after the last) log image / target / decoded rows (0 = never)."""


@attrs.define
class SanPGConfig:
    """The ``san_pg`` method: SA-Enc's trunk + SA-Dec trained by L_Rec alone on image /
    texture pairs (PIT, or any dataset whose records carry ``extras["texture"]``;
    ``loader.textures = true``). The official repository gives no SAN-PG training
    settings: Adam(``lr``, betas (``beta1``, ``beta2``)), x ``gamma`` at ``milestones``
    (epochs), are this plugin's choice (``[train]``'s optimizer and schedule keys are
    refused). ``embed`` gives the pooled layer-4 map."""

    lr: float = attrs.field(default=1e-4, validator=_positive)
    beta1: float = attrs.field(default=0.5, validator=_fraction)
    beta2: float = attrs.field(default=0.999, validator=_fraction)
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative)
    milestones: list[int] = attrs.field(factory=list, validator=_increasing)
    gamma: float = attrs.field(default=0.1, validator=_positive)
    log_images_every: int = attrs.field(default=0, validator=attrs.validators.ge(0))

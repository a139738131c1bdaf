"""Recipe options of the plugin's components. No torch import: ``reid check`` reads these."""

from __future__ import annotations

from typing import Literal

import attrs

_positive = attrs.validators.gt(0)
_fraction = attrs.validators.and_(attrs.validators.ge(0.0), attrs.validators.le(1.0))


@attrs.define
class FlippingLossConfig:
    """The flipping loss: ``sum_e mean((f_e(x) - f_e(flip(x)))^2)``.

    ``original`` and ``flipped`` name the method outputs holding the embeddings of the
    images and of their horizontal flips: a tensor (one embedding, B x D) or a list of
    tensors (several embeddings, summed over; FlipReID has three)."""

    original: str = attrs.field(default="features_original", validator=attrs.validators.min_len(1))
    flipped: str = attrs.field(default="features_flipped", validator=attrs.validators.min_len(1))


@attrs.define
class FlipReIDConfig:
    """The ``flipreid`` method (Ni & Rahtu, 2021).

    ``variant`` selects the comparison of the paper: ``flipreid`` (train on the images and
    their flips, losses on the merged embeddings, flipping loss, flip-averaged inference),
    ``flip_tta`` (plain training, flip-averaged inference) or ``plain`` (neither).

    The network is the recipe's ``[backbone]`` (a ResNet-style one: ``timm`` with a
    ``resnet*``/``resnest*`` model, or ``resnet_ibn_a``) cut after stage 3; stage 4 is
    duplicated into a global branch and a ``region_num``-stripe branch. The backbone's own
    ``pooling`` option is not used: each embedding has its own GeM pooling.

    Optimisation (the official code's): Adam (``adam_eps`` as Keras) at ``train.lr`` with
    coupled weight decay ``train.weight_decay`` (2 x the Keras L2 factor) on every weight
    but the GeM exponents. Per epoch ``e`` of a phase: linear warm-up from
    ``lr_floor * lr`` to ``lr`` over ``warmup_epochs`` (reached at ``warmup_epochs - 1``),
    then ``lr / drop_factor ** ((e - warmup_epochs) // drop_every)``, never below
    ``lr_floor * lr``. The first ``frozen_epochs`` epochs train only the new layers (the
    whole backbone, both stage-4 copies included, is frozen with BN in inference mode);
    then everything trains and the schedule starts again, with the first phase's Adam
    state carried over as the official code's re-compiled Keras Adam does (the new layers
    keep their moments, the backbone starts with zero moments at the shared step count).
    Of ``[train]``'s optimization keys only ``lr`` and ``weight_decay`` are read (and
    ``lr_mult``, ``optimizer_impl``); ``reid check`` refuses the others (the optimizer,
    schedule, milestones, warm-up ...) and ``freeze_epochs``.
    """

    variant: Literal["flipreid", "flip_tta", "plain"] = "flipreid"
    region_num: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    gem_p: float = attrs.field(default=1.0, validator=_positive)
    """Initial GeM exponent (1 = average pooling at the start), one per embedding."""
    gem_trainable: bool = True
    clip: bool = True
    """Clip each pooled embedding to [0, 1], as the official code."""
    bn_eps: float = attrs.field(default=2e-5, validator=_positive)
    bn_momentum: float = attrs.field(default=0.01, validator=_fraction)
    """PyTorch convention (Keras momentum 0.99 = PyTorch 0.01)."""
    frozen_epochs: int = attrs.field(default=20, validator=attrs.validators.ge(0))
    warmup_epochs: int = attrs.field(default=10, validator=attrs.validators.ge(0))
    drop_every: int = attrs.field(default=30, validator=attrs.validators.ge(1))
    drop_factor: float = attrs.field(default=10.0, validator=attrs.validators.ge(1.0))
    lr_floor: float = attrs.field(default=0.01, validator=_fraction)
    """Lower bound of the LR as a fraction of ``train.lr`` (2e-6 / 2e-4 in the paper)."""
    adam_eps: float = attrs.field(default=1e-7, validator=_positive)

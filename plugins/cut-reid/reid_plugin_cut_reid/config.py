"""Recipe options of the plugin's components (attrs only: no torch import).

Every field is a recipe key of its component's section; defaults follow the Synth-ReID
code's reported configuration (``test_11_bottle``) unless a docstring says otherwise.
"""

from __future__ import annotations

from typing import Literal

import attrs

_ge0 = attrs.validators.ge(0)

_positive = attrs.validators.gt(0)
_non_negative = attrs.validators.ge(0)
_fraction = attrs.validators.and_(attrs.validators.ge(0.0), attrs.validators.lt(1.0))


def _layer_ids(_instance, attribute, value) -> None:
    if any(v < 0 for v in value) or len(set(value)) != len(value):
        raise ValueError(f"'{attribute.name}' must be distinct layer indices >= 0: {value}")


def _increasing(_instance, attribute, value) -> None:
    if list(value) != sorted(value) or any(v < 0 for v in value):
        raise ValueError(f"'{attribute.name}' must be increasing epochs >= 0: {value}")


Style = Literal["synth-reid", "cut"]


# --- networks -----------------------------------------------------------------------------


@attrs.define
class ResnetGeneratorConfig:
    """ResNet encoder-decoder generator (``resnet_generator``).

    ``style = "synth-reid"``: the Synth-ReID generator (stride-2 convs and transposed convs,
    convs before instance norm without bias, kaiming init; NCE layers 0, 2, 3, 4, 8 of
    its 13-module encoder). ``style = "cut"``: the CUT reference ``resnet_9blocks`` (bias on
    every conv, xavier init with gain 0.02; NCE layers 0, 4, 8, 12, 16 of its flat encoder),
    anti-aliased (blur-pool down, [1, 3, 3, 1] up) unless ``antialias = false``.
    """

    style: Style = "synth-reid"
    ngf: int = attrs.field(default=64, validator=attrs.validators.ge(1))
    blocks: int = attrs.field(default=9, validator=attrs.validators.ge(1))
    downsamplings: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    antialias: bool = True
    """Only for ``style = "cut"`` (Synth-ReID has no anti-aliasing)."""
    in_channels: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    out_channels: int = attrs.field(default=3, validator=attrs.validators.ge(1))


@attrs.define
class PatchDiscriminatorConfig:
    """PatchGAN discriminator (``patch_discriminator``), ``ndf`` channels, 3 strided layers.

    ``style = "synth-reid"``: stride-2 convs, then two stride-1 4x4 convs with asymmetric
    zero padding (h 1, w 2) and (h 2, w 1) so a 256x128 image gives a 1x32x16 map; convs
    before instance norm without bias. ``style = "cut"``: CUT's ``basic`` 70x70 PatchGAN
    (bias everywhere, 30x14 map at 256x128), anti-aliased unless ``antialias = false``.
    ``forward(x)`` returns the map; ``features(x)`` also returns the outputs of the
    layers used by the feature-matching loss (Synth-ReID's ``dis_layers`` 1..4).
    """

    style: Style = "synth-reid"
    ndf: int = attrs.field(default=64, validator=attrs.validators.ge(1))
    antialias: bool = True
    """Only for ``style = "cut"``."""
    in_channels: int = attrs.field(default=3, validator=attrs.validators.ge(1))


# --- losses -------------------------------------------------------------------------------


@attrs.define
class LSGANConfig:
    """Least-squares GAN loss on discriminator maps (``lsgan``).

    ``role = "generator"``: MSE(outputs[fake], 1). ``role = "discriminator"``:
    MSE(outputs[real], 1) + MSE(outputs[fake], 0) (a sum, as Synth-ReID; its weight 0.5
    halves it). ``fake`` and ``real`` name the keys of the method's outputs.
    """

    role: Literal["generator", "discriminator"] = "generator"
    fake: str = "d_fake"
    real: str = "d_real"
    real_label: float = 1.0
    fake_label: float = 0.0


@attrs.define
class FeatureMatchingConfig:
    """Adversarial feature matching on discriminator layers (``feature_matching``).

    mean over layers l of MSE(A_l, B_l), with A = outputs[a] and B = outputs[b] lists of
    discriminator layer outputs (G step: real target vs translated; D step: source vs
    translated). ``kind = "gram"`` compares Gram matrices divided by C * H * W instead.
    """

    a: str = "d_features_a"
    b: str = "d_features_b"
    kind: Literal["feat_match", "gram_match"] = "feat_match"


@attrs.define
class PatchNCEConfig:
    """PatchNCE (CUT's contrastive loss) with its per-layer MLP heads (``patch_nce``).

    ``outputs[keys]`` and ``outputs[queries]`` are lists of encoder feature maps (one per
    NCE layer) of the source image and of its translation; ``in_channels`` gives their
    channels (Synth-ReID's layers 0, 2, 3, 4, 8: 3, 128, 256, 256, 256). Per layer the same
    ``num_patches`` random locations are taken for every image, for keys and queries; each
    head is Linear-ReLU-Linear to ``head_dim`` then L2-normalised (``mlp = false``: only
    the normalisation). Logits are [q.k+, q.k- of the other patches of the same image] /
    ``temperature``; loss = the mean cross-entropy with target 0, averaged over layers.
    Keys are detached. With ``identity_weight`` > 0 the identity term
    ``identity_weight * NCE(outputs[identity_keys], outputs[identity_queries])`` (target
    image vs its translation, CUT's NCE_Y) is added, with the same heads.
    """

    in_channels: list[int] = attrs.field(factory=lambda: [3, 128, 256, 256, 256])
    num_patches: int = attrs.field(default=256, validator=attrs.validators.ge(1))
    head_dim: int = attrs.field(default=256, validator=attrs.validators.ge(1))
    temperature: float = attrs.field(default=0.07, validator=_positive)
    mlp: bool = True
    head_init: Literal["kaiming", "xavier"] = "kaiming"
    """``kaiming``: Synth-ReID's heads (kaiming-normal, fan_out, biases 0); ``xavier``: the
    CUT repository's (xavier-normal, gain 0.02: weights about 50-70x smaller)."""
    keys: str = "nce_source"
    queries: str = "nce_translated"
    identity_weight: float = attrs.field(default=0.0, validator=_non_negative)
    identity_keys: str = "nce_target"
    identity_queries: str = "nce_target_translated"


# --- method -------------------------------------------------------------------------------


@attrs.define
class CutReidConfig:
    """The ``cut_reid`` method (Synth-ReID): CUT translation with a joint re-ID branch.

    Networks come from ``[generators.translator]`` (default ``resnet_generator``) and
    ``[generators.discriminator]`` (default ``patch_discriminator``); the loss weights are
    here, not in ``[[losses]]``. One step = the G step (translator, NCE heads and re-ID
    branch) then the D step. Optimisers are Adam with the options below; schedules are
    multistep per epoch (``gamma``): translator, discriminator and heads at
    ``milestones``, the re-ID branch at ``reid_milestones``. ``[train]``'s optimisation
    keys (``lr``, ``optimizer``, ``schedule``, ...) are not read, and ``reid check`` refuses
    a recipe that sets one; ``train.optimizer_impl`` and ``train.lr_mult`` (per optimiser:
    translator, discriminator, nce, reid) apply, as do its ``epochs`` and ``eval_every``.
    """

    weight_gen: float = attrs.field(default=1.0, validator=_non_negative)
    weight_dis: float = attrs.field(default=0.5, validator=_non_negative)
    weight_nce: float = attrs.field(default=0.5, validator=_non_negative)
    weight_idt: float = attrs.field(default=0.0, validator=_non_negative)
    """Identity NCE on target images (CUT's NCE_Y) as a weight on the loss term (Synth-ReID
    scales the translated image instead; 0 in its reported configs)."""
    weight_sim: float = attrs.field(default=0.5, validator=_non_negative)
    weight_x: float = attrs.field(default=0.5, validator=_non_negative)
    weight_t: float = attrs.field(default=0.0, validator=_non_negative)
    sim_type: Literal["feat_match", "gram_match"] = "feat_match"
    guide_gen: bool = True
    """Back-propagate the re-ID loss into the encoder (joint learning); with false the
    re-ID branch trains on detached encoder features after the D step."""
    nce_layers: list[int] = attrs.field(factory=list, validator=_layer_ids)
    """Encoder layer indices for PatchNCE; empty = the generator style's default."""
    num_patches: int = attrs.field(default=256, validator=attrs.validators.ge(1))
    nce_temperature: float = attrs.field(default=0.07, validator=_positive)
    head_dim: int = attrs.field(default=256, validator=attrs.validators.ge(1))
    head_init: Literal["kaiming", "xavier"] = "kaiming"
    """Init of the PatchNCE heads: ``kaiming`` (Synth-ReID: kaiming-normal, fan_out) or
    ``xavier`` (the CUT repository: xavier-normal, gain 0.02)."""
    translation: bool = True
    """False: the clean ablation of the translation. The encoder and the re-ID branch train
    on the re-ID loss alone (no GAN, feature-matching or NCE terms; the discriminator and
    the NCE heads are never updated, the decoder is never run in training); everything
    else (networks, data, optimisers, schedules) stays the same. Needs ``guide_gen``."""
    label_smoothing: float = attrs.field(default=0.1, validator=_fraction)
    triplet_margin: float = attrs.field(default=0.3, validator=_non_negative)
    eval_flip: bool = True
    """Add the feature of the horizontally flipped image to the embedding (a sum)."""
    reid_layers: list[int] = attrs.field(factory=lambda: [4, 6, 3])
    """Bottleneck blocks of ResNet-50 stages 2, 3, 4 in the re-ID branch."""
    reid_width: int = attrs.field(default=128, validator=attrs.validators.ge(1))
    """Bottleneck width of the branch's first stage (128 = ResNet-50; doubles per stage,
    outputs 4x); smaller only for CPU-sized recipes."""
    classifier_init: Literal["kaiming", "normal"] = "kaiming"
    """``kaiming``: kaiming-normal (fan_out) as Synth-ReID; ``normal``: N(0, 0.001) as the
    strong baseline (small initial logits)."""

    lr: float = attrs.field(default=2e-4, validator=_positive)
    beta1: float = attrs.field(default=0.5, validator=_fraction)
    beta2: float = attrs.field(default=0.999, validator=_fraction)
    weight_decay: float = attrs.field(default=5e-4, validator=_non_negative)
    head_beta2: float = attrs.field(default=0.99, validator=_fraction)
    head_weight_decay: float = attrs.field(default=5e-3, validator=_non_negative)
    milestones: list[int] = attrs.field(factory=lambda: [40], validator=_increasing)
    reid_milestones: list[int] = attrs.field(factory=lambda: [30, 40], validator=_increasing)
    gamma: float = attrs.field(default=0.1, validator=_positive)
    log_images_every: int = attrs.field(default=0, validator=_ge0)
    """Every N epochs (and after the last) log a grid of source / translated / target
    images: TensorBoard ``images/translations`` and ``images/translations/step-XXXXXXX.png``
    in the run directory (step = steps done; 0 = never)."""

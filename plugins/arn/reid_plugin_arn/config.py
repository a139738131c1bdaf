"""Recipe options of the plugin's components (attrs only: no torch import, read by ``reid check``).

Defaults follow the official ARN code (yujheli/ARN) unless a docstring says otherwise; the
method notes are ``design/methods/arn.md`` section B.
"""

from __future__ import annotations

from typing import Literal

import attrs

_positive = attrs.validators.gt(0)
_non_negative = attrs.validators.ge(0)
_positive_list = attrs.validators.deep_iterable(attrs.validators.gt(0))


def _decoder_channels(_instance, attribute, value) -> None:
    if len(value) != 5 or value[-1] != 3 or any(v <= 0 for v in value):
        raise ValueError(f"'{attribute.name}' must be 5 positive widths ending in 3 (one per "
                         f"stride-2 block, undoing the ResNet's total stride 32; RGB out): "
                         f"{list(value)}")


# --- networks -----------------------------------------------------------------------------


@attrs.define
class EncoderOptions:
    """The ResNet the encoders are cut from (any timm ResNet: ``resnet50``,
    ``resnet50.tv_in1k`` for torchvision's ImageNet weights, ``resnet18``...).

    ``layers`` / ``channels`` override the blocks per stage and the stage widths (tiny
    CPU networks; empty = the model's own). ``pretrained``: ``""`` (random init), ``"hub"``
    (timm's ImageNet weights, downloaded: only when the recipe says so) or a local
    ``.pth`` / ``.safetensors`` file of the timm model. ``pooling``: how a feature map
    becomes the feature vector, adaptive to the input size (``avg`` as both official codes;
    ``max`` as the identity/pose README says)."""

    model: str = attrs.field(default="resnet50", validator=attrs.validators.min_len(1))
    layers: list[int] = attrs.field(factory=list, validator=_positive_list)
    channels: list[int] = attrs.field(factory=list, validator=_positive_list)
    pretrained: str = ""
    pooling: Literal["avg", "max"] = "avg"

    def __attrs_post_init__(self) -> None:
        for name in ("layers", "channels"):
            if getattr(self, name) and len(getattr(self, name)) != 4:
                raise ValueError(f"'{name}' must give the 4 ResNet stages: "
                                 f"{getattr(self, name)}")


@attrs.define
class ArnNetworkConfig(EncoderOptions):
    """ARN as coded (``arn_network``): E_I = the ResNet to stage 3 (shared by both domains),
    E_C / E_S / E_T = three separate copies of stage 4, the image decoder on e_c + e_p.

    ``private = false`` drops E_S and E_T (the ablation "no private encoders": the decoder
    then reads e_c alone). ``decoder_channels``: the 5 transposed-conv blocks' widths;
    ``decoder_convs``: stride-1 transposed convs after each block's stride-2 one."""

    private: bool = True
    decoder_channels: list[int] = attrs.field(factory=lambda: [1024, 512, 256, 64, 3],
                                              validator=_decoder_channels)
    decoder_convs: int = attrs.field(default=2, validator=attrs.validators.ge(0))


@attrs.define
class IdentityPoseNetworkConfig(EncoderOptions):
    """The seed's identity / pose variant (``identity_pose_network``): an identity encoder
    (ResNet to stage 3 + its own stage 4) and a separate full pose encoder; the decoder
    reads their concatenated maps [pose, identity] (5 blocks of bilinear upsampling + conv).
    The seed feeds 224 x 224 images (a loader option) and average-pools (``pooling``)."""

    decoder_channels: list[int] = attrs.field(factory=lambda: [2048, 512, 256, 64, 3],
                                              validator=_decoder_channels)
    decoder_convs: int = attrs.field(default=2, validator=attrs.validators.ge(0))


# --- losses -------------------------------------------------------------------------------


@attrs.define
class ReconstructionConfig:
    """``arn_reconstruction``: sum |x_hat - x| / (B * H * W) (the code's normalisation:
    summed over channels, averaged over images and pixels). ``input``: the key of the
    reconstruction in the outputs, ``target``: the key of the images."""

    input: str = "reconstruction"
    target: str = "images"


@attrs.define
class DifferenceConfig:
    """``arn_difference``: ``dot`` = the code's raw dot product sum_i <p_i, c_i>;
    ``frobenius`` = the paper's ||C^T P||_F^2 (squared Frobenius norm of the
    cross-correlation of the batch's shared and private features); ``dsn`` = Domain
    Separation Networks' released form: features centred over the batch and L2-normalised,
    the mean of the squared cross-correlation entries (scale-free: it cannot be lowered by
    shrinking the features)."""

    form: Literal["dot", "frobenius", "dsn"] = "dot"
    shared: str = "shared"
    private: str = "private"


@attrs.define
class MMDConfig:
    """``mmd``: multi-kernel Gaussian MMD between ``target`` (X) and ``source`` (Y) features,
    k = sum_sigma exp(-||a - b||^2 / (2 sigma^2)), biased estimator (diagonals included);
    ``root = true``: sqrt(relu(MMD^2)) as the code (a zero gradient at MMD^2 = 0)."""

    sigmas: list[float] = attrs.field(factory=lambda: [1.0, 2.0, 10.0],
                                      validator=_positive_list)
    root: bool = True
    source: str = "source_features"
    target: str = "target_features"


@attrs.define
class ContrastiveConfig:
    """``arn_contrastive``: over pairs i <= j, d = ||f_i - f_j||^2 / dim; same label adds d,
    different adds relu(margin - d) (``squared = true``: its square, the paper's form);
    the sum times 2 / (B (B - 1))."""

    margin: float = attrs.field(default=2.0, validator=_positive)
    squared: bool = False
    input: str = "features"


# --- the method ---------------------------------------------------------------------------


@attrs.define
class ArnConfig:
    """The ``arn`` method. Loss weights (``w_*``): the seed README's command uses 0.1 for
    rec, dif, mmd and ctr (the default); the code's argparse defaults are w_ctr = 1.0; the
    paper (per a summary) gives ctr 0.01, rec 2.0, dif 1500 and no MMD.

    ``source_only = true``: the pretraining stage (labelled source only; E_I, E_C and the
    classifier trained by cross-entropy (+ ``w_ctr`` x contrastive); the private encoders
    and the decoder stay as built). ``pretrained``: a ``[requires.<role>]`` of the recipe
    (or a run directory) whose network initialises this one (every tensor but the
    classifier, as the code); ``""``: start from the network as built (e.g. ImageNet)."""

    source_only: bool = False
    pretrained: str = "pretrained"
    w_cls: float = attrs.field(default=1.0, validator=_non_negative)
    w_rec: float = attrs.field(default=0.1, validator=_non_negative)
    w_dif: float = attrs.field(default=0.1, validator=_non_negative)
    w_mmd: float = attrs.field(default=0.1, validator=_non_negative)
    w_ctr: float = attrs.field(default=0.1, validator=_non_negative)
    difference: Literal["dot", "frobenius", "dsn"] = "dot"
    """The difference loss's form (``arn_difference``): ``dot`` as the code (at weight 0.1
    it drives the shared feature to zero on the synthetic pair); ``dsn`` (normalised, as
    Domain Separation Networks' code) cannot be lowered that way (README, "Does it work?")."""
    contrastive: Literal["hinge", "squared"] = "hinge"
    margin: float = attrs.field(default=2.0, validator=_positive)
    sigmas: list[float] = attrs.field(factory=lambda: [1.0, 2.0, 10.0], validator=_positive_list)
    dropout: float = attrs.field(default=0.5, validator=[attrs.validators.ge(0.0),
                                                         attrs.validators.lt(1.0)])
    """Dropout before the classifier (ARN's code 0.5; the identity/pose code has none)."""
    private_init: Literal["built", "shared"] = "built"
    """Where E_S and E_T start after the pretrained run is copied in: ``built`` = the run's
    (its as-built stage 4: never trained by the source-only stage); ``shared`` = copies of
    the pretrained E_C (the code builds all three from the same weights). ``arn_network``
    only."""
    log_images_every: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """Reconstructions of both domains every N epochs (0 = never)."""

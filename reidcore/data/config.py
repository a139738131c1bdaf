"""The ``[loader]`` section of a recipe: image size, batch composition, augmentation.

Training batches hold ``identities`` x ``instances`` source images (P x K identity
sampling; ``sampler = "random"`` draws ``identities * instances`` images uniformly
instead). Target batches (unlabeled, when the recipe has ``[[data.target]]``) hold
``target_batch_size`` images (0 = the same as the source batch).

Training transforms, in order: resize to ``height`` x ``width`` (or, with probability
``translate``, to 1.125x and a random crop back: Random2DTranslation), horizontal flip
(``flip``), pad-and-crop (``pad`` pixels, ``pad_mode``), colour jitter (``color_jitter``
strength), random grayscale patch replacement (``grayscale_patch`` probability),
to-tensor, normalisation (``normalize``), random erasing (``erasing`` probability).
Test transforms: resize, to-tensor, normalisation.
"""

from __future__ import annotations

from typing import Literal

import attrs

_prob = [attrs.validators.ge(0.0), attrs.validators.le(1.0)]


@attrs.define
class LoaderConfig:
    """How images become batches. P x K identity sampling: ``identities`` x ``instances``."""

    height: int = attrs.field(default=256, validator=attrs.validators.ge(16))
    width: int = attrs.field(default=128, validator=attrs.validators.ge(16))
    identities: int = attrs.field(default=16, validator=attrs.validators.ge(1))
    instances: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    test_batch_size: int = attrs.field(default=128, validator=attrs.validators.ge(1))
    workers: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    sampler: Literal["pk", "random"] = "pk"
    """``pk``: P identities x K instances per batch; ``random``: uniform shuffling."""
    target_batch_size: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """Images per unlabeled target batch; 0 = the source batch size."""
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    flip: float = attrs.field(default=0.5, validator=_prob)
    """Probability of a horizontal flip."""
    pad: int = attrs.field(default=10, validator=attrs.validators.ge(0))
    """Pad-and-random-crop margin in pixels (0 = off)."""
    pad_mode: Literal["constant", "edge", "reflect"] = "constant"
    translate: float = attrs.field(default=0.0, validator=_prob)
    """Probability of Random2DTranslation (resize to 1.125x, random crop)."""
    color_jitter: float = attrs.field(default=0.0, validator=_prob)
    """Brightness/contrast/saturation jitter strength (hue gets a quarter); 0 = off."""
    grayscale_patch: float = attrs.field(default=0.0, validator=_prob)
    """Probability of replacing a random patch by its grayscale version."""
    erasing: float = attrs.field(default=0.5, validator=_prob)
    """Probability of random erasing (area 2-40 %, aspect 0.3-3.3, fill: ``erasing_fill``)."""
    erasing_fill: Literal["mean_pixel", "raw_mean"] = "mean_pixel"
    """What random erasing writes: ``mean_pixel``, the ImageNet mean pixel (0 in the
    ImageNet-normalised tensor; fast-reid, DG-Net's code, FlipReID's) or ``raw_mean``, the
    mean's values (0.485, 0.456, 0.406) written *into the normalised tensor*, as
    torchreid's and Zhong et al.'s re-ID code do (about (0.60, 0.56, 0.50) as pixels after
    ImageNet normalisation)."""
    erasing_sampler: Literal["torchvision", "official"] = "torchvision"
    """How random erasing and the grayscale patch draw their rectangle: ``torchvision``
    (aspect log-uniform; erasing is torchvision's, 10 attempts) or ``official`` (Zhong et
    al.'s and FlipReID's code: aspect uniform in 0.3 to 1/0.3, 100 attempts)."""
    normalize: Literal["imagenet", "tanh", "none"] = "imagenet"
    """``imagenet`` mean/std, ``tanh`` maps to [-1, 1] (mean = std = 0.5), or ``none``."""
    cache_images: bool = False
    """Decode (and resize) the training images once, into shared memory that the loader's
    workers read, instead of decoding every JPEG every epoch (re-ID training sets fit in
    RAM: Market-1501 at 256x128 is about 1.3 GB). Same tensors and random draws as
    without it."""
    cache_gb: float = attrs.field(default=8.0, validator=attrs.validators.ge(0.0))
    """The cache's budget in GiB; images beyond it are decoded as usual (with a message)."""
    positive: bool = False
    """Each training image also brings another image of its identity (``positives``)."""
    second_batch: bool = False
    """Each step also brings ``second``: an independent labelled batch of the same size
    and sampler from the same source data (DG-Net's two loaders A and B)."""
    textures: bool = False
    """Load ``extras["texture"]`` of each training image as ``textures`` (not augmented)."""
    texture_height: int = attrs.field(default=256, validator=attrs.validators.ge(8))
    texture_width: int = attrs.field(default=256, validator=attrs.validators.ge(8))

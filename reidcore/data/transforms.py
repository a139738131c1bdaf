"""Image transforms built from the ``[loader]`` recipe section (torchvision transforms v2).

Images are decoded with PIL, turned into uint8 tensors, augmented, then converted to
float and normalised; random erasing runs last on the normalised tensor.
"""

from __future__ import annotations

import math
import random

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from reidcore.data.config import LoaderConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZATIONS = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "tanh": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


def _interpolation(name: str) -> InterpolationMode:
    return {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}[name]


class Random2DTranslation(torch.nn.Module):
    """With probability ``p`` resize to 1.125x the size and crop a random window of the
    size back (torchreid's Random2DTranslation); otherwise a plain resize."""

    def __init__(self, height: int, width: int, p: float = 0.5,
                 interpolation: InterpolationMode = InterpolationMode.BILINEAR):
        super().__init__()
        self.height, self.width, self.p = height, width, p
        self.resize = T.Resize((height, width), interpolation=interpolation, antialias=True)
        self.big = T.Resize((round(height * 1.125), round(width * 1.125)),
                            interpolation=interpolation, antialias=True)
        self.crop = T.RandomCrop((height, width))

    def forward(self, image):
        if random.random() >= self.p:
            return self.resize(image)
        return self.crop(self.big(image))


OFFICIAL_RATIO = (0.3, 1 / 0.3)
"""The aspect range of Zhong et al.'s random erasing code (``r1`` to ``1 / r1``)."""


def sample_rectangle(height: int, width: int, sampler: str = "official",
                     area: tuple[float, float] = (0.02, 0.4),
                     ratio: tuple[float, float] = OFFICIAL_RATIO,
                     attempts: int = 100) -> tuple[int, int, int, int] | None:
    """A random rectangle ``(top, left, rows, cols)`` inside ``height`` x ``width``, or
    None when ``attempts`` draws all fail to fit (Python's ``random``).

    Each attempt draws the area fraction uniformly in ``area`` and the aspect (rows /
    cols) in ``ratio``: uniformly with ``sampler = "official"`` (Zhong et al.'s random
    erasing and the FlipReID code, 100 attempts, a rectangle fits when it is strictly
    smaller than the image, its top-left corner is drawn in ``[0, size - extent)``), or
    log-uniformly with ``"torchvision"`` (torchvision's ``RandomErasing`` sampling, corner
    in ``[0, size - extent]``). The sides are ``round(sqrt(area * aspect))`` and
    ``round(sqrt(area / aspect))``.
    """
    total = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(attempts):
        target = random.uniform(*area) * total
        if sampler == "official":
            aspect = random.uniform(*ratio)
        else:
            aspect = math.exp(random.uniform(*log_ratio))
        rows = int(round(math.sqrt(target * aspect)))
        cols = int(round(math.sqrt(target / aspect)))
        if 0 < rows < height and 0 < cols < width:
            if sampler == "official":  # numpy's randint(0, size - extent): high excluded
                return (random.randrange(height - rows), random.randrange(width - cols),
                        rows, cols)
            return random.randint(0, height - rows), random.randint(0, width - cols), rows, cols
    return None


class RandomGrayscalePatch(torch.nn.Module):
    """With probability ``p`` replace a random rectangle (area 2-40 %, aspect 0.3-3.3) by
    its grayscale version (Gong et al., "Person Re-identification based on Grayscale
    Patch Replacement", 2021). Works on C x H x W tensors, uint8 or float.

    ``sampler`` (see :func:`sample_rectangle`): ``torchvision`` draws the aspect
    log-uniformly in ``ratio`` (100 attempts); ``official`` as the authors' code (uniform
    in 0.3 to 1/0.3, 100 attempts)."""

    def __init__(self, p: float = 0.5, area: tuple[float, float] = (0.02, 0.4),
                 ratio: tuple[float, float] = (0.3, 3.33), sampler: str = "torchvision"):
        super().__init__()
        self.p, self.area, self.sampler = p, area, sampler
        self.ratio = OFFICIAL_RATIO if sampler == "official" else ratio

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if random.random() >= self.p:
            return image
        _, h, w = image.shape
        box = sample_rectangle(h, w, self.sampler, self.area, self.ratio, attempts=100)
        if box is None:
            return image
        y, x, ph, pw = box
        patch = image[:, y:y + ph, x:x + pw].float()
        gray = (0.299 * patch[0] + 0.587 * patch[1] + 0.114 * patch[2]).to(image.dtype)
        image = image.clone()
        image[:, y:y + ph, x:x + pw] = gray
        return image


class RandomErasing(torch.nn.Module):
    """Random erasing with the official sampler (Zhong et al.'s code, as FlipReID's): with
    probability ``p`` fill a rectangle from :func:`sample_rectangle` (area 2-40 %, aspect
    uniform in 0.3 to 1/0.3, 100 attempts) with ``value`` (one per channel)."""

    def __init__(self, p: float, value: tuple[float, ...],
                 area: tuple[float, float] = (0.02, 0.4)):
        super().__init__()
        self.p, self.value, self.area = p, tuple(value), area

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if random.random() >= self.p:
            return image
        box = sample_rectangle(image.shape[-2], image.shape[-1], "official", self.area)
        if box is None:
            return image
        y, x, rows, cols = box
        image = image.clone()
        fill = torch.tensor(self.value, dtype=image.dtype, device=image.device)
        image[:, y:y + rows, x:x + cols] = fill.view(-1, 1, 1)
        return image


def _normalize_and_float(loader: LoaderConfig) -> list:
    steps = [T.ToDtype(torch.float32, scale=True)]
    if loader.normalize != "none":
        mean, std = NORMALIZATIONS[loader.normalize]
        steps.append(T.Normalize(mean, std))
    return steps


def erasing_fill(loader: LoaderConfig) -> tuple[float, float, float]:
    """The value random erasing writes into the normalised tensor (``loader.erasing_fill``):
    the ImageNet mean pixel, normalised; or the mean's raw values, as torchreid does."""
    if loader.normalize == "none" or loader.erasing_fill == "raw_mean":
        return IMAGENET_MEAN
    mean, std = NORMALIZATIONS[loader.normalize]
    red, green, blue = ((m - mu) / s for m, mu, s in zip(IMAGENET_MEAN, mean, std, strict=True))
    return red, green, blue


def build_train_transform(loader: LoaderConfig) -> T.Compose:
    """PIL image -> augmented, normalised float tensor 3 x height x width."""
    size = (loader.height, loader.width)
    interpolation = _interpolation(loader.interpolation)
    steps: list = [T.PILToTensor()]
    if loader.translate > 0:
        steps.append(Random2DTranslation(*size, p=loader.translate, interpolation=interpolation))
    else:
        steps.append(T.Resize(size, interpolation=interpolation, antialias=True))
    if loader.flip > 0:
        steps.append(T.RandomHorizontalFlip(loader.flip))
    if loader.pad > 0:
        steps += [T.Pad(loader.pad, padding_mode=loader.pad_mode), T.RandomCrop(size)]
    if loader.color_jitter > 0:
        s = loader.color_jitter
        steps.append(T.ColorJitter(brightness=s, contrast=s, saturation=s, hue=min(0.5, s / 4)))
    if loader.grayscale_patch > 0:
        steps.append(RandomGrayscalePatch(loader.grayscale_patch,
                                          sampler=loader.erasing_sampler))
    steps += _normalize_and_float(loader)
    if loader.erasing > 0 and loader.erasing_sampler == "official":
        steps.append(RandomErasing(loader.erasing, erasing_fill(loader)))
    elif loader.erasing > 0:
        steps.append(T.RandomErasing(p=loader.erasing, scale=(0.02, 0.4), ratio=(0.3, 3.33),
                                     value=list(erasing_fill(loader))))
    return T.Compose(steps)


def build_test_transform(loader: LoaderConfig) -> T.Compose:
    """PIL image -> resized, normalised float tensor 3 x height x width."""
    return T.Compose([
        T.PILToTensor(),
        T.Resize((loader.height, loader.width), interpolation=_interpolation(loader.interpolation),
                 antialias=True),
        *_normalize_and_float(loader),
    ])


def build_texture_transform(loader: LoaderConfig) -> T.Compose:
    """Texture maps (SAN targets): resized to texture_height x texture_width, in [-1, 1]."""
    return T.Compose([
        T.PILToTensor(),
        T.Resize((loader.texture_height, loader.texture_width),
                 interpolation=InterpolationMode.BILINEAR, antialias=True),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])

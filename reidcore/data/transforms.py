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


class RandomGrayscalePatch(torch.nn.Module):
    """With probability ``p`` replace a random rectangle (area 2-40 %, aspect 0.3-3.3) by
    its grayscale version (Gong et al., "Person Re-identification based on Grayscale
    Patch Replacement", 2021). Works on C x H x W tensors, uint8 or float."""

    def __init__(self, p: float = 0.5, area: tuple[float, float] = (0.02, 0.4),
                 ratio: tuple[float, float] = (0.3, 3.33)):
        super().__init__()
        self.p, self.area, self.ratio = p, area, ratio

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if random.random() >= self.p:
            return image
        _, h, w = image.shape
        for _ in range(100):
            target = random.uniform(*self.area) * h * w
            aspect = math.exp(random.uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
            ph = int(round(math.sqrt(target * aspect)))
            pw = int(round(math.sqrt(target / aspect)))
            if 0 < ph < h and 0 < pw < w:
                y, x = random.randint(0, h - ph), random.randint(0, w - pw)
                patch = image[:, y:y + ph, x:x + pw].float()
                gray = (0.299 * patch[0] + 0.587 * patch[1] + 0.114 * patch[2]).to(image.dtype)
                image = image.clone()
                image[:, y:y + ph, x:x + pw] = gray
                return image
        return image


def _normalize_and_float(loader: LoaderConfig) -> list:
    steps = [T.ToDtype(torch.float32, scale=True)]
    if loader.normalize != "none":
        mean, std = NORMALIZATIONS[loader.normalize]
        steps.append(T.Normalize(mean, std))
    return steps


def erasing_fill(loader: LoaderConfig) -> tuple[float, float, float]:
    """The value random erasing writes: the ImageNet mean, in the normalised space."""
    if loader.normalize == "none":
        return IMAGENET_MEAN
    mean, std = NORMALIZATIONS[loader.normalize]
    return tuple((m - mu) / s for m, mu, s in zip(IMAGENET_MEAN, mean, std, strict=True))


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
        steps.append(RandomGrayscalePatch(loader.grayscale_patch))
    steps += _normalize_and_float(loader)
    if loader.erasing > 0:
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

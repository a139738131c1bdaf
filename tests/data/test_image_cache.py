"""The decoded-image cache: the same tensors as decoding every time, within a byte budget."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from reidcore.data.config import LoaderConfig
from reidcore.data.image_cache import (
    CachedImages,
    build_image_cache,
    format_bytes,
    split_transform,
)
from reidcore.data.loaders import open_image
from reidcore.data.transforms import build_test_transform, build_train_transform

# (height, width, mode) of the files: odd sizes, one grayscale JPEG (opened as RGB)
FILES = [(40, 20, "RGB"), (37, 19, "RGB"), (64, 32, "L"), (50, 30, "RGB"), (33, 17, "RGB")]


@pytest.fixture
def paths(tmp_path) -> list[str]:
    rng = np.random.default_rng(0)
    out = []
    for i, (h, w, mode) in enumerate(FILES):
        pixels = rng.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
        path = tmp_path / f"{i}.jpg"
        Image.fromarray(pixels, mode).save(path, quality=90)
        out.append(str(path))
    return out


LOADER = LoaderConfig(height=32, width=16, pad=2, erasing=0.5, grayscale_patch=0.5,
                      color_jitter=0.2)
RESIZED = 3 * 32 * 16  # bytes per cached image at 32x16


def _draws(images, paths, seed: int) -> list[torch.Tensor]:
    random.seed(seed)
    torch.manual_seed(seed)
    return [images(p) for p in paths * 2]


def test_cached_augmentations_equal_decoding_every_time(paths):
    transform = build_train_transform(LOADER)
    logged: list[str] = []
    cache = build_image_cache(paths, transform, open_image, budget_bytes=10**6, threads=2,
                              log=logged.append)
    assert cache is not None and len(cache) == len(paths) and cache.nbytes == 5 * RESIZED
    assert cache.buffer.is_shared()  # workers read it without a copy
    assert "5 images at 32x16" in logged[0] and "shared memory" in logged[0]
    plain = _draws(lambda p: transform(open_image(p)), paths, 7)
    cached = _draws(CachedImages(transform, open_image, cache), paths, 7)
    assert all(torch.equal(a, b) for a, b in zip(plain, cached, strict=True))


def test_the_random_streams_are_consumed_alike(paths):
    transform = build_train_transform(LOADER)
    cache = build_image_cache(paths, transform, open_image, budget_bytes=10**6, log=None)
    _draws(lambda p: transform(open_image(p)), paths, 3)
    after_plain = (random.random(), torch.rand(1))
    _draws(CachedImages(transform, open_image, cache), paths, 3)
    after_cached = (random.random(), torch.rand(1))
    assert after_plain[0] == after_cached[0] and torch.equal(after_plain[1], after_cached[1])


def test_workers_never_decode_a_cached_image(paths):
    transform = build_test_transform(LOADER)
    cache = build_image_cache(paths, transform, open_image, budget_bytes=10**6, log=None)
    opened: list[str] = []

    def counting_opener(path):
        opened.append(path)
        return open_image(path)

    images = CachedImages(transform, counting_opener, cache)
    outputs = [images(p) for p in paths]
    assert opened == []
    assert all(torch.equal(o, transform(open_image(p))) for o, p in zip(outputs, paths,
                                                                         strict=True))
    outputs[0].zero_()  # a transform writing into its input must not touch the cache
    assert torch.equal(images(paths[0]), transform(open_image(paths[0])))


def test_budget_caches_what_fits_and_says_which_setting(paths):
    transform = build_train_transform(LOADER)
    logged: list[str] = []
    cache = build_image_cache(paths, transform, open_image, budget_bytes=2 * RESIZED + 10,
                              log=logged.append)
    assert cache is not None and len(cache) == 2 and cache.nbytes == 2 * RESIZED
    assert (paths[0], split_transform(transform)[0]) in cache
    message = logged[0]
    assert "3 of 5 images did not fit" in message and "loader.cache_gb" in message
    assert format_bytes(5 * RESIZED) in message
    plain = _draws(lambda p: transform(open_image(p)), paths, 11)
    cached = _draws(CachedImages(transform, open_image, cache), paths, 11)
    assert all(torch.equal(a, b) for a, b in zip(plain, cached, strict=True))
    off: list[str] = []
    assert build_image_cache(paths, transform, open_image, RESIZED - 1, log=off.append) is None
    assert "more than the budget" in off[0]
    assert build_image_cache(paths, transform, open_image, 0, log=None) is None


def test_random_resize_caches_the_decoded_image(paths):
    translate = LoaderConfig(height=32, width=16, translate=0.5, erasing=0.0)
    transform = build_train_transform(translate)
    variant, _, _ = split_transform(transform)
    assert variant == ("decoded",)  # Random2DTranslation draws: only decoding is cached
    cache = build_image_cache(paths, transform, open_image, budget_bytes=10**6, log=None)
    assert cache.nbytes == sum(3 * h * w for h, w, _ in FILES)
    plain = _draws(lambda p: transform(open_image(p)), paths, 5)
    cached = _draws(CachedImages(transform, open_image, cache), paths, 5)
    assert all(torch.equal(a, b) for a, b in zip(plain, cached, strict=True))


def test_train_and_test_transforms_share_a_variant_and_others_are_refused():
    train = split_transform(build_train_transform(LOADER))[0]
    test = split_transform(build_test_transform(LOADER))[0]
    assert train == test == ("resized", 32, 16, "bilinear", True)
    bicubic = LoaderConfig(height=32, width=16, interpolation="bicubic")
    assert split_transform(build_test_transform(bicubic))[0] != test
    assert split_transform(lambda image: image) is None


class _Paths(torch.utils.data.Dataset):
    def __init__(self, paths, images):
        self.paths, self.images = paths, images

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return self.images(self.paths[index])


def test_forked_workers_read_the_shared_cache(paths):
    transform = build_train_transform(LOADER)
    cache = build_image_cache(paths, transform, open_image, budget_bytes=10**6, log=None)
    batches = {}
    for name, images in (("plain", CachedImages(transform, open_image)),
                         ("cached", CachedImages(transform, open_image, cache))):
        loader = torch.utils.data.DataLoader(
            _Paths(paths, images), batch_size=5, num_workers=2,
            generator=torch.Generator().manual_seed(4))
        batches[name] = [batch for _ in range(2) for batch in loader]
    assert all(torch.equal(a, b) for a, b in zip(batches["plain"], batches["cached"],
                                                  strict=True))

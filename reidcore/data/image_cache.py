"""Decoded images kept in shared memory, so that no epoch decodes a JPEG twice.

Re-ID training sets fit in RAM once decoded and resized (Market-1501's 12,936 training
images at 256x128 are 1.27 GB of uint8), and decoding is most of what a loader worker
does: on a fast GPU the workers, not the network, set the pace. :func:`build_image_cache`
decodes every image once, in the main process before the DataLoader forks its workers,
into one flat uint8 tensor in shared memory (``share_memory_()``): workers read it
without copying, with the ``fork`` start method and with ``spawn`` alike.

What is cached is the deterministic head of a transform: ``PILToTensor`` followed by a
``Resize`` (key: path, size and interpolation), or the decoded image alone when the resize
is random (``loader.translate``). :class:`CachedImages` then applies the rest of the
transform (the augmentation) to a copy of the cached tensor, exactly as the full transform
would: the same pixels, the same random draws in the same order, so a run gives the same
result with the cache as without it.

The cache holds at most ``budget_bytes``: when the images need more, the first ones that
fit are cached, the others are decoded every time, and a message says how many and which
setting to raise. A process builds its own cache (with DDP, one per rank).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import v2 as T

Variant = tuple[Any, ...]
"""What a cached tensor is: ``("decoded",)`` or ``("resized", height, width, mode)``."""


def format_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.2f} {unit}"
        count /= 1024
    return f"{count:.2f} GB"


def split_transform(transform: Any) -> tuple[Variant, Callable, Callable] | None:
    """``(variant, head, rest)`` of a transform built by :mod:`reidcore.data.transforms`:
    ``head`` is its deterministic start (PIL image -> uint8 tensor, resized when the
    resize is not random), ``rest`` the remaining steps. None when the transform does not
    start with ``PILToTensor`` (nothing that can be cached)."""
    steps = list(getattr(transform, "transforms", ()))
    if not steps or not isinstance(steps[0], T.PILToTensor):
        return None
    if len(steps) > 1 and isinstance(steps[1], T.Resize) and steps[1].max_size is None:
        resize = steps[1]
        size = tuple(resize.size) if len(resize.size) == 2 else None
        if size is not None:
            mode = getattr(resize.interpolation, "value", resize.interpolation)
            variant = ("resized", int(size[0]), int(size[1]), str(mode), bool(resize.antialias))
            return variant, T.Compose(steps[:2]), T.Compose(steps[2:])
    return ("decoded",), T.Compose(steps[:1]), T.Compose(steps[1:])


def _shape(path: str, variant: Variant) -> tuple[int, int, int]:
    if variant[0] == "resized":
        return 3, variant[1], variant[2]
    with Image.open(path) as image:  # the header only: no decoding
        width, height = image.size
    return 3, height, width


def _shared_memory_room() -> int | None:
    """Free bytes where ``share_memory_()`` puts tensors (Linux: /dev/shm)."""
    if os.path.isdir("/dev/shm"):
        return shutil.disk_usage("/dev/shm").free
    return None


class ImageCache:
    """Cached uint8 C x H x W images by ``(path, variant)``; see the module docstring."""

    def __init__(self, buffer: torch.Tensor,
                 index: dict[tuple[str, Variant], tuple[int, tuple[int, int, int]]]):
        self.buffer = buffer
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    @property
    def nbytes(self) -> int:
        return int(self.buffer.numel())

    def __contains__(self, key: tuple[str, Variant]) -> bool:
        return key in self.index

    def get(self, path: str, variant: Variant) -> torch.Tensor | None:
        """A copy of the cached image (transforms may write into it), or None."""
        entry = self.index.get((path, variant))
        if entry is None:
            return None
        offset, shape = entry
        count = shape[0] * shape[1] * shape[2]
        return self.buffer[offset:offset + count].view(shape).clone()


def build_image_cache(paths: Sequence[str], transform: Any, opener: Callable[[str], Any],
                      budget_bytes: int, threads: int = 0,
                      log: Callable[[str], Any] | None = print,
                      setting: str = "loader.cache_gb") -> ImageCache | None:
    """Decode (and resize, as ``transform`` starts) ``paths`` into shared memory, at most
    ``budget_bytes``; ``opener`` decodes a path into a PIL image (the loader's, with its
    error messages). None when ``transform`` cannot be cached or nothing fits. ``threads``:
    decoding threads (0: up to 8, as the CPUs allow); ``setting`` names the recipe key of
    the budget in messages."""
    split = split_transform(transform)
    if split is None or budget_bytes <= 0:
        return None
    variant, head, _rest = split
    unique = list(dict.fromkeys(paths))
    started = time.perf_counter()
    offsets: dict[tuple[str, Variant], tuple[int, tuple[int, int, int]]] = {}
    total = 0
    needed = 0
    for path in unique:
        shape = _shape(path, variant)
        size = shape[0] * shape[1] * shape[2]
        needed += size
        if total + size <= budget_bytes:
            offsets[(path, variant)] = (total, shape)
            total += size
    if not offsets:
        if log:
            log(f"image cache: off: one image needs more than the budget {setting} = "
                f"{format_bytes(budget_bytes)}")
        return None
    buffer = torch.empty(total, dtype=torch.uint8)
    room = _shared_memory_room()
    shared = room is None or total < room
    if shared:
        buffer.share_memory_()
    threads = threads or min(8, os.cpu_count() or 1)

    def fill(item: tuple[tuple[str, Variant], tuple[int, tuple[int, int, int]]]) -> None:
        (path, _), (offset, shape) = item
        image = head(opener(path))
        if tuple(image.shape) != shape:  # e.g. a grayscale file opened without RGB
            raise ValueError(f"image cache: {path} decodes to {tuple(image.shape)}, "
                             f"expected {shape}")
        count = shape[0] * shape[1] * shape[2]
        buffer[offset:offset + count].copy_(image.reshape(-1))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(fill, offsets.items()))
    if log:
        what = (f"{variant[1]}x{variant[2]}" if variant[0] == "resized" else "decoded size")
        where = "shared memory" if shared else (
            f"private memory (/dev/shm has {format_bytes(room or 0)} free; workers forked "
            f"from this process still read it without copying)")
        message = (f"image cache: {len(offsets)} images at {what}, {format_bytes(total)} in "
                   f"{where}, decoded in {time.perf_counter() - started:.1f}s "
                   f"({threads} threads)")
        if len(offsets) < len(unique):
            message += (f"; {len(unique) - len(offsets)} of {len(unique)} images did not fit "
                        f"the budget {setting} = {format_bytes(budget_bytes)} (all need "
                        f"{format_bytes(needed)}) and are decoded every epoch: raise "
                        f"{setting} to cache them all")
        log(message)
    return ImageCache(buffer, offsets)


class CachedImages:
    """``path -> transform(opener(path))``, reading the deterministic head of the
    transform from ``cache`` where it holds the image (picklable: workers get it)."""

    def __init__(self, transform: Any, opener: Callable[[str], Any],
                 cache: ImageCache | None = None):
        self.transform, self.opener, self.cache = transform, opener, cache
        self.split = split_transform(transform)

    def __call__(self, path: str) -> torch.Tensor:
        if self.cache is not None and self.split is not None:
            variant, _head, rest = self.split
            image = self.cache.get(path, variant)
            if image is not None:
                return rest(image)
        return self.transform(self.opener(path))

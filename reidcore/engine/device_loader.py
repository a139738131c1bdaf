"""Feeding the accelerator: each batch is on the device before the step that uses it.

Without it, every training step starts with a synchronous host-to-device copy of its
batch (``batch["images"].to(device)``) that the GPU waits for. :class:`DeviceLoader` wraps
the training loader and, on CUDA, copies the *next* batch on a side stream while the
current step runs: tensors are pinned (when the DataLoader has not pinned them already),
copied with ``non_blocking=True``, and the step's stream waits on an event of the copy;
each tensor is marked as used by that stream (``record_stream``) so the caching allocator
never hands its memory out again before the step is done with it.

On a CPU device it yields the wrapped loader's batches themselves, in the same order and
at the same moments: nothing is copied or prefetched, so a CPU run is bit-identical with
or without it. On CUDA with ``loader.workers = 0`` the loader's transforms draw from the
global RNGs one batch ahead of the step; runs stay deterministic (same draws, same
order), only the interleaving with a step's own CPU draws differs from an unwrapped loader.

Everything else (``set_epoch``, ``num_classes``, ``pid_offsets``, ...) is the wrapped
loader's: attribute look-ups are forwarded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import torch

Handle = TypeVar("Handle")


def move_batch(batch: Any, device: torch.device, channels_last: bool = False,
               non_blocking: bool = True) -> Any:
    """``batch`` with every tensor on ``device`` (dicts, lists and tuples walked; other
    values, e.g. paths and extras, kept as they are). 4-D floating point tensors take
    ``channels_last`` when asked (an image batch)."""
    if isinstance(batch, torch.Tensor):
        pin = (non_blocking and device.type == "cuda" and batch.device.type == "cpu"
               and not batch.is_pinned())
        source = batch.pin_memory() if pin else batch
        moved = source.to(device, non_blocking=non_blocking)
        if channels_last and moved.dim() == 4 and moved.is_floating_point():
            moved = moved.contiguous(memory_format=torch.channels_last)
        return moved
    if isinstance(batch, Mapping):
        return {key: move_batch(value, device, channels_last, non_blocking)
                for key, value in batch.items()}
    if isinstance(batch, list):
        return [move_batch(value, device, channels_last, non_blocking) for value in batch]
    if isinstance(batch, tuple):
        return tuple(move_batch(value, device, channels_last, non_blocking) for value in batch)
    return batch


def tensors_of(batch: Any) -> Iterator[torch.Tensor]:
    """Every tensor in a (nested) batch."""
    if isinstance(batch, torch.Tensor):
        yield batch
    elif isinstance(batch, Mapping):
        for value in batch.values():
            yield from tensors_of(value)
    elif isinstance(batch, (list, tuple)):
        for value in batch:
            yield from tensors_of(value)


def prefetch(batches: Iterable[Any], stage: Callable[[Any], Handle],
             finish: Callable[[Handle], Any], ahead: int = 1) -> Iterator[Any]:
    """Yield ``finish(stage(batch))`` for every batch, with ``ahead`` batches staged
    before the one being yielded is handed out: the copy of batch ``i + ahead`` is under
    way while the consumer works on batch ``i``. Stops pulling from ``batches`` when the
    consumer stops."""
    if ahead < 1:
        raise ValueError(f"ahead must be >= 1, got {ahead}")
    iterator = iter(batches)
    staged: deque[Handle] = deque()

    def pull() -> None:
        for batch in iterator:
            staged.append(stage(batch))
            return

    for _ in range(ahead):
        pull()
    while staged:
        handle = staged.popleft()
        ready = finish(handle)
        pull()  # start the next copy before the step that uses ``ready`` runs
        yield ready


class DeviceLoader:
    """Wraps a training loader; see the module docstring.

    ``ahead``: batches copied in advance (one is enough to hide a copy behind a step;
    each costs one batch of device memory)."""

    def __init__(self, loader: Any, device: torch.device, channels_last: bool = False,
                 ahead: int = 1):
        self.loader = loader
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.ahead = ahead

    @property
    def active(self) -> bool:
        """Whether batches are copied ahead (a CUDA device); otherwise a pass-through."""
        return self.device.type == "cuda"

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        # only called for names this object lacks: the wrapped loader's API
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator[Any]:
        if not self.active:
            return iter(self.loader)
        return self._cuda_batches()

    def _cuda_batches(self) -> Iterator[Any]:
        device = self.device
        stream = torch.cuda.Stream(device=device)

        def stage(batch: Any) -> tuple[Any, torch.cuda.Event]:
            # no wait for the step's stream: the caching allocator gives the side stream only
            # blocks it owns, and pinned sources are kept until their copy is done
            with torch.cuda.stream(stream):
                moved = move_batch(batch, device, self.channels_last, non_blocking=True)
                done = torch.cuda.Event()
                done.record(stream)
            return moved, done

        def finish(handle: tuple[Any, torch.cuda.Event]) -> Any:
            moved, done = handle
            current = torch.cuda.current_stream(device)
            current.wait_event(done)
            for tensor in tensors_of(moved):
                if tensor.device.type == "cuda":
                    tensor.record_stream(current)
            return moved

        return prefetch(self.loader, stage, finish, self.ahead)

"""The prefetching device loader: a pass-through on CPU, ordered look-ahead on CUDA."""

from __future__ import annotations

import pytest
import torch

from reidcore.engine.device_loader import DeviceLoader, move_batch, prefetch, tensors_of


class _Loader:
    """A training loader's shape: batches, ``len``, ``set_epoch`` and attributes."""

    num_classes = 7

    def __init__(self, batches):
        self.batches = batches
        self.epoch = 0
        self.pulled = 0

    def __len__(self):
        return len(self.batches)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        for batch in self.batches:
            self.pulled += 1
            yield batch


def _batch(seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {"images": torch.rand(2, 3, 4, 2, generator=generator),
            "pids": torch.tensor([seed, seed]), "paths": ["a.jpg", "b.jpg"],
            "target": {"images": torch.rand(2, 3, 4, 2, generator=generator),
                       "extras": [{}, {}]}}


def test_cpu_is_a_pass_through_of_the_same_objects():
    batches = [_batch(i) for i in range(3)]
    loader = _Loader(batches)
    wrapped = DeviceLoader(loader, torch.device("cpu"), channels_last=True)
    assert not wrapped.active
    out = list(wrapped)
    assert all(a is b for a, b in zip(out, batches, strict=True))  # nothing copied
    assert len(wrapped) == 3 and wrapped.num_classes == 7
    wrapped.set_epoch(5)
    assert loader.epoch == 5


def test_prefetch_keeps_order_and_stages_ahead_only():
    loader = _Loader(list(range(6)))
    staged = []
    seen = []
    stream = prefetch(loader, stage=lambda b: staged.append(b) or ("h", b),
                      finish=lambda h: h[1] * 10, ahead=2)
    for value in stream:
        seen.append(value)
        # when batch i is handed out, batches up to i + 2 are staged, never more
        assert len(staged) == min(value // 10 + 3, 6)
        if value == 20:
            break
    assert seen == [0, 10, 20]
    assert loader.pulled == 5  # stopping the consumer stops the pulling
    assert list(prefetch(range(4), lambda b: b, lambda h: h)) == [0, 1, 2, 3]
    assert list(prefetch([], lambda b: b, lambda h: h)) == []
    with pytest.raises(ValueError, match="ahead"):
        list(prefetch([1], lambda b: b, lambda h: h, ahead=0))


def test_move_batch_walks_nested_batches_and_keeps_other_values():
    batch = _batch(1)
    moved = move_batch(batch, torch.device("cpu"), channels_last=True)
    assert moved["paths"] == ["a.jpg", "b.jpg"] and moved["target"]["extras"] == [{}, {}]
    assert moved["images"].is_contiguous(memory_format=torch.channels_last)
    assert moved["target"]["images"].is_contiguous(memory_format=torch.channels_last)
    assert moved["pids"].is_contiguous()  # not an image: left alone
    assert torch.equal(moved["images"], batch["images"])
    assert len(list(tensors_of(moved))) == 3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_arrive_on_the_device_equal_and_in_order():
    batches = [_batch(i) for i in range(4)]
    wrapped = DeviceLoader(_Loader(batches), torch.device("cuda"), channels_last=True)
    for original, moved in zip(batches, wrapped, strict=True):
        assert moved["images"].is_cuda and moved["target"]["images"].is_cuda
        assert moved["images"].is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(moved["images"].cpu(), original["images"])
        assert torch.equal(moved["pids"].cpu(), original["pids"])
        assert moved["paths"] == original["paths"]

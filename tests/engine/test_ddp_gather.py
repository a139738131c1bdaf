"""Sharded evaluation under DDP: each rank embeds a contiguous block of a test split
(SequentialBatchSampler) and gather_rows puts the blocks back on rank 0 in record order,
also when the split does not divide evenly or a rank's block is empty."""

from __future__ import annotations

import pytest
import torch

from reidcore.data.samplers import SequentialBatchSampler
from reidcore.engine import distributed

SIZES = (7, 8, 1)  # uneven, even, fewer records than ranks (rank 1 has none)


def _gather_record_indices() -> list[list[int] | None]:
    """In each spawned rank: embed 'features' that are the record indices, gather them."""
    info = distributed.from_environment()
    distributed.init_process_group(info, torch.device("cpu"))
    gathered = []
    for size in SIZES:
        sampler = SequentialBatchSampler(size, 3, info.rank, info.world_size)
        parts = [torch.tensor(batch, dtype=torch.float32)[:, None].repeat(1, 2)
                 for batch in sampler]
        rows = torch.cat(parts) if parts else torch.empty(0, 2)
        result = distributed.gather_rows(info, rows)
        gathered.append(None if result is None else result[:, 0].long().tolist())
    return gathered


def test_single_process_gather_is_the_identity():
    rows = torch.arange(6.0).reshape(3, 2)
    assert distributed.gather_rows(distributed.DistInfo(), rows) is rows


@pytest.mark.slow
def test_two_ranks_gather_their_shards_in_record_order():
    gathered = distributed.spawn(2, _gather_record_indices)
    assert gathered == [list(range(size)) for size in SIZES]

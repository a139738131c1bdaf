"""Process groups for DistributedDataParallel: ``--nproc N`` spawns, ``torchrun`` is detected.

gloo on CPU, nccl on CUDA. Rank 0 alone writes files and evaluates; the others wait.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import attrs
import torch


@attrs.define
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def from_environment() -> DistInfo:
    """The process's place in a ``torchrun`` launch (or a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ.get("RANK", "0")), world,
                    int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(info: DistInfo, device: torch.device) -> None:
    import torch.distributed as dist

    if not info.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=info.rank, world_size=info.world_size)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(info: DistInfo, value: Any) -> Any:
    if not info.enabled:
        return value
    import torch.distributed as dist

    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def broadcast_buffers(info: DistInfo, modules: Any) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank. Parameters
    agree across ranks (averaged gradients) but each rank's last training forward updated
    its own statistics; a sharded evaluation must embed with rank 0's network, the one
    that is checkpointed."""
    if not info.enabled:
        return
    import torch.distributed as dist

    for module in modules.values():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def gather_rows(info: DistInfo, rows: torch.Tensor) -> torch.Tensor | None:
    """Every rank's ``rows`` (N_r x D, on the CPU) concatenated in rank order on rank 0
    (None on the other ranks); ``rows`` itself in a single process. Test loaders give each
    rank a contiguous block of the records, so rank order is record order."""
    if not info.enabled:
        return rows
    import torch.distributed as dist

    parts: list[Any] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(rows.cpu(), parts, dst=0)
    if parts is None:
        return None
    return torch.cat([part for part in parts if part.numel()])  # a rank may have no rows


def all_gather_rows(info: DistInfo, rows: torch.Tensor) -> torch.Tensor:
    """Every rank's ``rows`` concatenated in rank order, on every rank (``rows`` itself in
    a single process): the queries every rank ranks against its gallery block."""
    if not info.enabled:
        return rows
    import torch.distributed as dist

    parts: list[Any] = [None] * info.world_size
    dist.all_gather_object(parts, rows.cpu())
    return torch.cat([part for part in parts if part.numel()])


def all_reduce_mean(info: DistInfo, values: dict[str, float]) -> dict[str, float]:
    """Average scalar metrics over the ranks (for logging)."""
    if not info.enabled or not values:
        return values
    import torch.distributed as dist

    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor)
    return {k: float(v) / info.world_size for k, v in zip(keys, tensor.tolist(), strict=True)}


def destroy() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawned(rank: int, world_size: int, port: int, function: Callable, args: tuple,
             result_queue: Any) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "RANK": str(rank), "WORLD_SIZE": str(world_size),
                       "LOCAL_RANK": str(rank)})
    try:
        result = function(*args)
    finally:
        destroy()
    if rank == 0:
        result_queue.put(result)


def spawn(nproc: int, function: Callable, *args: Any) -> Any:
    """Run ``function(*args)`` in ``nproc`` processes; return rank 0's result."""
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    mp.start_processes(_spawned, args=(nproc, free_port(), function, args, queue),
                       nprocs=nproc, join=True, start_method="spawn")
    return queue.get() if not queue.empty() else None

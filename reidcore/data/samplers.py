"""Batch samplers: P x K identities, uniform random, and their DDP sharding.

All samplers are deterministic functions of ``(seed, epoch)``: call ``set_epoch`` before
iterating (the train loader does it for you). With ``steps > 0`` an epoch is exactly that
many batches per rank (iteration-based training: DG-Net's iterations, FlipReID's 200-step
epochs): further passes over the data are drawn from the same ``(seed, epoch)`` generator
until the epoch is full, so it stays deterministic and a resumed epoch is the same.
Under DistributedDataParallel every rank
builds the same global list of batches and takes ``batches[rank::world_size]``, after
truncating it to a multiple of ``world_size``: shards are disjoint and every rank runs
the same number of steps. Samplers yield lists of dataset indices (batch samplers).
"""

from __future__ import annotations

import abc
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np


class _Sharded(abc.ABC):
    def __init__(self, seed: int, rank: int, world_size: int, steps: int = 0):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        if steps < 0:
            raise ValueError(f"steps per epoch must be >= 0, got {steps}")
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.steps = steps
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])

    @abc.abstractmethod
    def global_batches(self) -> list[list[int]]:
        """Every rank's batches of the current epoch, in order."""

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.global_batches()
        usable = len(batches) - len(batches) % self.world_size
        return iter(batches[self.rank:usable:self.world_size])

    def __len__(self) -> int:
        return self._total() // self.world_size

    def _total(self) -> int:
        """Batches per epoch over all ranks: ``steps`` per rank when set, else one pass."""
        return self.steps * self.world_size if self.steps else self._count()

    @abc.abstractmethod
    def _count(self) -> int:
        """Batches in one pass over the data (all ranks together)."""


class PKSampler(_Sharded):
    """P identities x K images per batch.

    Per epoch, each identity's images are shuffled (an identity with fewer than K images is
    filled up by sampling with replacement) and cut into chunks of K; batches take chunks of
    P distinct identities at random until fewer than P identities have chunks left (the
    torchreid/fast-reid RandomIdentitySampler). An epoch therefore covers about every image
    once: an epoch is ``(sum over identities of max(1, n // K)) // P`` batches, the same
    for every epoch (further rounds of drawing fill it up). Batches are laid out identity by
    identity: ``[id0 x K, id1 x K, ...]``.
    """

    def __init__(self, pids: Sequence[int], identities: int, instances: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, steps: int = 0):
        super().__init__(seed, rank, world_size, steps)
        self.p, self.k = identities, instances
        self.index: dict[int, list[int]] = defaultdict(list)
        for i, pid in enumerate(pids):
            self.index[int(pid)].append(i)
        self.pids = sorted(self.index)
        if len(self.pids) < self.p:
            raise ValueError(f"P x K sampling needs at least {self.p} identities, the training "
                             f"data has {len(self.pids)}; lower loader.identities")
        chunks = sum(max(1, len(v) // self.k) for v in self.index.values())
        self.length = max(1, chunks // self.p)
        """Batches per epoch (all ranks together): chunks of K over P, fixed for every epoch."""

    def _round(self, rng: np.random.Generator) -> list[list[int]]:
        chunks: dict[int, list[list[int]]] = {}
        for pid in self.pids:
            items = np.array(self.index[pid])
            if len(items) < self.k:
                items = rng.choice(items, size=self.k, replace=True)
            else:
                items = rng.permutation(items)
            n = len(items) // self.k
            chunks[pid] = [items[j * self.k:(j + 1) * self.k].tolist() for j in range(n)]
        available = [pid for pid in self.pids if chunks[pid]]
        batches = []
        while len(available) >= self.p:
            chosen = rng.choice(len(available), size=self.p, replace=False)
            batch: list[int] = []
            for c in chosen:
                batch += chunks[available[c]].pop()
            batches.append(batch)
            available = [pid for pid in available if chunks[pid]]
        return batches

    def global_batches(self) -> list[list[int]]:
        # rounds of the random chunk drawing until the fixed epoch length is reached, so
        # that every epoch has the same number of steps (schedulers count on it)
        rng = self._rng()
        batches: list[list[int]] = []
        while len(batches) < self._total():
            batches += self._round(rng)
        return batches[:self._total()]

    def _count(self) -> int:
        return self.length


class RandomBatchSampler(_Sharded):
    """Uniform shuffling into batches of ``batch_size`` (the last partial batch dropped)."""

    def __init__(self, size: int, batch_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, steps: int = 0):
        super().__init__(seed, rank, world_size, steps)
        if size < batch_size:
            raise ValueError(f"{size} images cannot fill one batch of {batch_size}")
        self.size, self.batch_size = size, batch_size

    def global_batches(self) -> list[list[int]]:
        rng = self._rng()
        n = self.size // self.batch_size
        batches: list[list[int]] = []
        while len(batches) < self._total():  # one pass, or passes until ``steps`` are full
            order = rng.permutation(self.size)
            batches += [order[i * self.batch_size:(i + 1) * self.batch_size].tolist()
                        for i in range(n)]
        return batches[:self._total()]

    def _count(self) -> int:
        return self.size // self.batch_size


class SequentialBatchSampler:
    """Test-time batches in dataset order; under DDP each rank takes a contiguous block
    (the engine gathers features in rank order)."""

    def __init__(self, size: int, batch_size: int, rank: int = 0, world_size: int = 1):
        per_rank = -(-size // world_size)
        self.start = min(size, rank * per_rank)
        self.stop = min(size, self.start + per_rank)
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[list[int]]:
        for i in range(self.start, self.stop, self.batch_size):
            yield list(range(i, min(self.stop, i + self.batch_size)))

    def __len__(self) -> int:
        return -(-(self.stop - self.start) // self.batch_size)

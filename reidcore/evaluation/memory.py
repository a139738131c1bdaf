"""The working-memory budget of evaluation (``evaluate.memory_gb``): block sizes chosen
to fit it, and a :class:`~reidcore.errors.ReidError` with the figure needed, raised before
allocating, when a request cannot fit (never a raw ``MemoryError``). No torch, no numba.
"""

from __future__ import annotations

import os

from reidcore.errors import ReidError

GB = 2**30


def default_memory_bytes() -> int:
    """The default working-memory budget of evaluation: half the machine's memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * GB
    return int(total // 2)


def budget_bytes(memory_gb: float | None) -> int:
    """``memory_gb`` (0 or None: the default) in bytes."""
    if not memory_gb:
        return default_memory_bytes()
    if memory_gb < 0:
        raise ReidError(f"evaluate.memory_gb must be >= 0 (0: half the machine's memory), "
                        f"got {memory_gb}")
    return int(memory_gb * GB)


class Budget:
    """Bytes an evaluation may still allocate; :meth:`check` raises a ReidError naming
    the figure it would need before a request beyond them is allocated."""

    def __init__(self, total: int, what: str):
        self.total = total
        self.used = 0
        self.what = what

    def check(self, nbytes: int, label: str) -> None:
        if self.used + nbytes > self.total:
            raise ReidError(
                f"{self.what} needs about {(self.used + nbytes) / GB:.2f} GB of working "
                f"memory ({label}: {nbytes / GB:.2f} GB"
                + (f", on top of {self.used / GB:.2f} GB already planned" if self.used
                   else "")
                + f"), more than the memory budget of {self.total / GB:.2f} GB "
                "(evaluate.memory_gb); raise the budget if the machine has the memory")

    def take(self, nbytes: int, label: str) -> None:
        self.check(nbytes, label)
        self.used += nbytes

    @property
    def left(self) -> int:
        return self.total - self.used


PLAIN_BYTES_PER_ENTRY = 8
"""Plain ranking, per query x gallery entry of a chunk: the float32 distances and the
ranking kernels' scratch (torch's temporaries and the candidates' int32 list)."""


def plain_rows(num_query: int, num_gallery: int, memory_bytes: int,
               rows: int | None = None, chunk_bytes: int = 256 * 2**20) -> int:
    """Query rows per distance chunk of the plain (streamed) ranking within the budget:
    ``rows`` when given (checked), else about ``chunk_bytes`` of distances a chunk."""
    budget = Budget(memory_bytes, f"ranking {num_query:,} queries x {num_gallery:,} "
                                  "gallery images")
    per_row = PLAIN_BYTES_PER_ENTRY * max(1, num_gallery)
    if rows:
        budget.check(rows * per_row, f"chunks of {rows:,} query rows")
        return rows
    budget.check(per_row, "one query row")
    return int(max(1, min(num_query, chunk_bytes // (4 * max(1, num_gallery)),
                          memory_bytes // per_row)))


def out_of_memory(exc: BaseException, what: str) -> ReidError:
    """The ReidError for an allocation that failed anyway (another process took the
    memory, or an estimate fell short)."""
    return ReidError(f"{what} ran out of memory ({str(exc).strip() or type(exc).__name__}); "
                     "lower evaluate.memory_gb to use smaller blocks, or free memory")

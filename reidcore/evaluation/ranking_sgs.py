"""Single-gallery-shot sampling (the classic CUHK03 protocol) for
:func:`reidcore.evaluation.ranking.rank_metrics`: the CMC averaged over random draws of one
gallery item per identity.

The draws come from a counter-based generator (splitmix64 of seed, query, repeat and group),
not from a sequential stream, so the same seed gives the same result on any number of
threads and any query chunking. A numba kernel (``cache=True``), parallel over queries.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange


@numba.njit(cache=True, inline="always")
def mix64(x):
    """The splitmix64 finaliser: a 64-bit hash with good avalanche."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def draw(seed, query, repeat, group, n):
    """A uniform draw in ``range(n)`` for (seed, query, repeat, group): counter-based."""
    h = mix64(np.uint64(seed) + np.uint64(0x9E3779B97F4A7C15))
    h = mix64(h ^ np.uint64(query))
    h = mix64(h ^ np.uint64(repeat))
    h = mix64(h ^ np.uint64(group))
    return np.int64(h % np.uint64(n))


@numba.njit(cache=True, parallel=True, nogil=True)
def sgs_kernel(distmat, q_index, q_camids, g_camids, g_order, group_starts, q_group,
                repeats, seed, max_rank, hits):
    """Single-gallery-shot CMC: ``hits[q, r]`` = fraction of draws with first match <= r+1.

    ``group_starts`` delimits the pid groups of ``g_order`` (junk already left out);
    ``q_group[q]`` is the query's own group (or -1). Same-camera items of the query's own
    identity are not drawn.
    """
    num_q = distmat.shape[0]
    num_groups = group_starts.shape[0] - 1
    for qi in prange(num_q):
        row = distmat[qi]
        own = q_group[qi]
        if own < 0:
            continue
        qc = q_camids[qi]
        own_start = group_starts[own]
        own_end = group_starts[own + 1]
        kept = np.empty(own_end - own_start, np.int64)
        n_kept = 0
        for t in range(own_start, own_end):
            j = g_order[t]
            if g_camids[j] != qc:
                kept[n_kept] = j
                n_kept += 1
        if n_kept == 0:
            continue
        for rep in range(repeats):
            p = kept[draw(seed, q_index[qi], rep, own, n_kept)]
            pv = row[p]
            rank = 0
            for grp in range(num_groups):
                if grp == own:
                    continue
                size = group_starts[grp + 1] - group_starts[grp]
                j = g_order[group_starts[grp] + draw(seed, q_index[qi], rep, grp, size)]
                v = row[j]
                if v < pv or (v == pv and j < p):
                    rank += 1
            for r in range(rank, max_rank):
                hits[qi, r] += 1.0
        for r in range(max_rank):
            hits[qi, r] /= repeats

"""The numba kernels behind :func:`reidcore.evaluation.ranking.rank_metrics`: the ranks of
each query's positives, and AP, INP and the first match from them.

No row is sorted. The positives of a query are found through a gallery index grouped by
pid, sorted among themselves, and one pass over the row counts, for each positive, how many
valid negatives precede it (a binary search among the positives, skipped outright for items
beyond the last positive). Ties in distance are broken by gallery order. Compiled by numba
on first use (``cache=True``: a new process loads them from the cache), parallel over
queries. The semantics are documented in :mod:`reidcore.evaluation.ranking`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange


@numba.njit(cache=True, nogil=True)
def positive_ranks(row, g_pids, g_camids, g_order, start, end, q_pid, q_camid,
                    use_cams, self_index):
    """0-based ranks (among valid items) of the positives of one query, in rank order.

    Returns ``(ranks, nan_seen)``; ``ranks`` is empty when the query has no positive.
    """
    n_group = end - start
    pos = np.empty(n_group, np.int64)
    n = 0
    for t in range(start, end):
        j = g_order[t]
        if use_cams:
            if g_camids[j] == q_camid:
                continue
        elif j == self_index:
            continue
        pos[n] = j
        n += 1
    ranks = np.empty(n, np.int64)
    if n == 0:
        return ranks, False
    pos = pos[:n]  # increasing gallery index (g_order is a stable sort by pid)
    keys = np.empty(n, row.dtype)
    nan_seen = False
    for k in range(n):
        keys[k] = row[pos[k]]
        if keys[k] != keys[k]:
            nan_seen = True
    order = np.argsort(keys, kind="mergesort")  # stable: ties keep gallery order
    ks = keys[order]
    ps = pos[order]
    dmax = ks[n - 1]
    # a tight first pass keeps only the items that can rank before a positive (and NaN)
    num_g = row.shape[0]
    candidates = np.empty(num_g, np.int32)
    m = 0
    block_end = num_g - num_g % 64
    for block in range(0, block_end, 64):
        hits = 0
        for j in range(block, block + 64):  # vectorised count; most blocks have none
            hits += not row[j] > dmax
        if hits:
            for j in range(block, block + 64):
                if not row[j] > dmax:
                    candidates[m] = j
                    m += 1
    for j in range(block_end, num_g):
        if not row[j] > dmax:
            candidates[m] = j
            m += 1
    counts = np.zeros(n + 1, np.int64)
    for c in range(m):
        j = candidates[c]
        v = row[j]
        if v != v:
            nan_seen = True
            continue
        gp = g_pids[j]
        if gp == q_pid or gp == -1 or j == self_index:
            continue  # positives, removed same-id items, junk, the query itself
        # number of positives before (v, j): branch-free lower bound
        base = 0
        length = n
        while length > 1:
            step = length >> 1
            kv = ks[base + step]
            if kv < v or (kv == v and ps[base + step] < j):
                base += step
            length -= step
        kv = ks[base]
        if kv < v or (kv == v and ps[base] < j):
            base += 1
        counts[base] += 1
    before = 0
    for k in range(n):
        before += counts[k]
        ranks[k] = k + before
    return ranks, nan_seen


@numba.njit(cache=True, nogil=True)
def query_metrics(ranks):
    """AP (standard and interpolated), first-match rank (1-based) and INP of one query
    from the 0-based ranks of its true matches, in increasing order (zeros when none):
    shared by the one-process kernel and the sharded gallery's count merge."""
    n = ranks.shape[0]
    if n == 0:
        return 0.0, 0.0, 0, 0.0
    s = 0.0
    s_interp = 0.0
    for k in range(n):
        r = ranks[k]
        precision = (k + 1.0) / (r + 1.0)
        old_precision = k / r if r != 0 else 1.0
        s += precision
        s_interp += (old_precision + precision) / 2.0
    return s / n, s_interp / n, ranks[0] + 1, n / (ranks[n - 1] + 1.0)


@numba.njit(cache=True, parallel=True, nogil=True)
def rank_kernel(distmat, q_pids, q_camids, g_pids, g_camids, use_cams, self_index,
                g_order, grp_start, grp_end, ap, ap_interp, first, inp, npos, nan_flag):
    """Per-query AP (standard and interpolated), first-match rank, INP and number of
    positives, written into the output arrays; ``nan_flag[q]`` marks a row holding NaN.

    ``grp_start[q]:grp_end[q]`` is the query's pid group in ``g_order``; parallel over
    queries.
    """
    num_q = distmat.shape[0]
    for qi in prange(num_q):
        ranks, nan_seen = positive_ranks(
            distmat[qi], g_pids, g_camids, g_order, grp_start[qi], grp_end[qi],
            q_pids[qi], q_camids[qi], use_cams, self_index[qi])
        npos[qi] = ranks.shape[0]
        nan_flag[qi] = nan_seen
        ap[qi], ap_interp[qi], first[qi], inp[qi] = query_metrics(ranks)

"""Exact ranking metrics over a gallery sharded across processes.

Each process holds a contiguous shard of the gallery (shards in rank order) and all the
queries. For every chunk of queries:

1. each shard lists, per query, its positives as ``(distance, global gallery index)``
   (:func:`shard_positives`); the lists are gathered and merged in shard order, then
   sorted stably by distance (:func:`merge_positives`): every process now holds each
   query's positives in global rank order, exactly as one process would sort them;
2. each shard counts, per query and per positive ``k``, the valid negatives of its shard
   that rank between positive ``k - 1`` and positive ``k`` (:func:`shard_counts`; ties
   broken by global gallery index); the counts are summed over the shards;
3. the rank of positive ``k`` is ``k`` plus the negatives before it, and AP, INP and the
   first match follow exactly as in the one-process kernel (:func:`metrics_from_counts`).

Only integers and the positives' distances cross process boundaries, and the arithmetic
on the ranks is the one-process arithmetic, so CMC, mAP and mINP are bit-identical to
:func:`~reidcore.evaluation.evaluator.evaluate_features` on the whole gallery.
TPR@FPR is exact too (each shard keeps its smallest negative distances; the union holds
the global ones). Protocols ``market`` and ``no-camera``; **single-gallery-shot sampling,
query expansion and re-ranking stay single-process** (they need the whole gallery: under
``torchrun`` they are refused with that message). :func:`evaluate_sharded` runs the
exchange over ``torch.distributed`` (any backend: gloo on CPU); the three steps are plain
functions for any other transport. ``torchrun --nproc-per-node N reid eval --query Q.npz
--gallery G.npz`` uses it (:func:`evaluate_sets_sharded`): each process reads the files
and ranks against its shard; rank 0 prints.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import attrs
import numba
import numpy as np
from numba import prange

from reidcore.errors import ReidError
from reidcore.evaluation.config import shard_refusal
from reidcore.evaluation.ranking import GalleryIndex, RankResult, _Partial, combine
from reidcore.evaluation.ranking_kernels import query_metrics
from reidcore.evaluation.verification import VerificationPass, negative_pairs, tpr_at_fpr


def shard_bounds(num_gallery: int, world_size: int, rank: int) -> tuple[int, int]:
    """``(start, stop)`` of ``rank``'s contiguous shard (sizes differ by at most one)."""
    base, extra = divmod(num_gallery, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


@numba.njit(cache=True, parallel=True, nogil=True)
def _positives(distmat, q_pids, q_cams, g_cams, use_cams, self_index, g_order, grp_start,
               grp_end, offset, fill, ptr, out_val, out_idx, sizes):
    for qi in prange(distmat.shape[0]):
        n = 0
        base = ptr[qi]
        for t in range(grp_start[qi], grp_end[qi]):
            j = g_order[t]
            if use_cams:
                if g_cams[j] == q_cams[qi]:
                    continue
            elif j == self_index[qi]:
                continue
            if fill:
                out_val[base + n] = np.float64(distmat[qi, j])
                out_idx[base + n] = offset + j
            n += 1
        sizes[qi] = n


@numba.njit(cache=True, parallel=True, nogil=True)
def _sort_segments(ptr, vals, idx):
    for qi in prange(ptr.shape[0] - 1):
        a, b = ptr[qi], ptr[qi + 1]
        order = np.argsort(vals[a:b], kind="mergesort")  # stable: ties keep index order
        v = vals[a:b][order]
        i = idx[a:b][order]
        vals[a:b] = v
        idx[a:b] = i


@numba.njit(cache=True, parallel=True, nogil=True)
def _counts(distmat, q_pids, g_pids, offset, self_index, ptr, vals, idx, counts, nan_flag):
    for qi in prange(distmat.shape[0]):
        a = ptr[qi]
        n = ptr[qi + 1] - a
        if n == 0:
            continue
        dmax = vals[a + n - 1]
        for k in range(n):
            if vals[a + k] != vals[a + k]:
                nan_flag[qi] = True
        q_pid = q_pids[qi]
        for j in range(distmat.shape[1]):
            v = np.float64(distmat[qi, j])
            if v > dmax:
                continue
            if v != v:
                nan_flag[qi] = True
                continue
            gp = g_pids[j]
            if gp == q_pid or gp == -1 or j == self_index[qi]:
                continue
            gj = offset + j
            base = 0
            length = n
            while length > 1:
                step = length >> 1
                kv = vals[a + base + step]
                if kv < v or (kv == v and idx[a + base + step] < gj):
                    base += step
                length -= step
            kv = vals[a + base]
            if kv < v or (kv == v and idx[a + base] < gj):
                base += 1
            if base < n:
                counts[a + base] += 1


@numba.njit(cache=True, parallel=True, nogil=True)
def _metrics(ptr, counts, ap, ap_interp, first, inp, npos):
    for qi in prange(ptr.shape[0] - 1):
        a = ptr[qi]
        n = ptr[qi + 1] - a
        npos[qi] = n
        ranks = np.empty(n, np.int64)  # k-th match's rank: k + what ranks ahead of it
        before = 0
        for k in range(n):
            before += counts[a + k]
            ranks[k] = k + before
        ap[qi], ap_interp[qi], first[qi], inp[qi] = query_metrics(ranks)


def _local_self_index(query_gallery_index, offset: int, shard_size: int,
                      num_q: int) -> np.ndarray:
    if query_gallery_index is None:
        return np.full(num_q, -1, np.int64)
    local = np.asarray(query_gallery_index, np.int64) - offset
    return np.where((local >= 0) & (local < shard_size), local, -1).astype(np.int64)


def shard_positives(distmat: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray | None,
                    shard: GalleryIndex, *, offset: int, protocol: str,
                    query_gallery_index: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 1 on one shard (``distmat``: query chunk x shard, the shard's items at global
    gallery indices ``offset + j``): per query, its positives in this shard.
    Returns ``(sizes, distances float64, global indices)``, the lists back to back."""
    num_q = distmat.shape[0]
    use_cams = protocol != "no-camera"
    q_cams = (np.ascontiguousarray(q_camids, np.int64) if use_cams
              else np.zeros(num_q, np.int64))
    g_cams = shard.camids if use_cams else np.zeros(distmat.shape[1], np.int64)
    self_index = (np.full(num_q, -1, np.int64) if use_cams else
                  _local_self_index(query_gallery_index, offset, distmat.shape[1], num_q))
    groups = shard.query_groups(q_pids)
    starts = np.where(groups >= 0, shard.group_starts[np.maximum(groups, 0)], 0)
    ends = np.where(groups >= 0, shard.group_starts[np.maximum(groups, 0) + 1], 0)
    args = (np.ascontiguousarray(distmat), q_pids, q_cams, g_cams, use_cams, self_index,
            shard.order, starts.astype(np.int64), ends.astype(np.int64), offset)
    sizes = np.empty(num_q, np.int64)
    empty_v, empty_i = np.empty(0, np.float64), np.empty(0, np.int64)
    _positives(*args, False, np.zeros(num_q, np.int64), empty_v, empty_i, sizes)
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    vals, idx = np.empty(ptr[-1], np.float64), np.empty(ptr[-1], np.int64)
    _positives(*args, True, ptr, vals, idx, sizes)
    return sizes, vals, idx


def merge_positives(per_shard: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 1's lists of every shard (in shard order) merged per query and sorted by
    (distance, global index): ``(ptr, distances, global indices)``."""
    sizes = np.stack([s for s, _, _ in per_shard])  # shards x queries
    num_q = sizes.shape[1]
    ptr = np.concatenate([[0], np.cumsum(sizes.sum(axis=0))]).astype(np.int64)
    vals = np.empty(ptr[-1], np.float64)
    idx = np.empty(ptr[-1], np.int64)
    fill = ptr[:-1].copy()
    for shard_sizes, shard_vals, shard_idx in per_shard:
        shard_ptr = np.concatenate([[0], np.cumsum(shard_sizes)])
        # destination of each element: its query's fill position + its rank within it
        owner = np.repeat(np.arange(num_q), shard_sizes)
        within = np.arange(shard_ptr[-1]) - shard_ptr[owner]
        dest = fill[owner] + within
        vals[dest] = shard_vals
        idx[dest] = shard_idx
        fill += shard_sizes
    _sort_segments(ptr, vals, idx)
    return ptr, vals, idx


def shard_counts(distmat: np.ndarray, q_pids: np.ndarray, shard: GalleryIndex, merged, *,
                 offset: int, protocol: str, query_gallery_index: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Step 2 on one shard: per positive (in :func:`merge_positives` order) the valid
    negatives of this shard between it and the positive before it; and a per-query flag
    for NaN distances. Both are summed (or-ed) over the shards."""
    ptr, vals, idx = merged
    num_q = distmat.shape[0]
    self_index = (_local_self_index(query_gallery_index, offset, distmat.shape[1], num_q)
                  if protocol == "no-camera" else np.full(num_q, -1, np.int64))
    counts = np.zeros(ptr[-1], np.int64)
    nan_flag = np.zeros(num_q, np.bool_)
    _counts(np.ascontiguousarray(distmat), q_pids, shard.pids, offset, self_index, ptr,
            vals, idx, counts, nan_flag)
    return counts, nan_flag


def metrics_from_counts(ptr: np.ndarray, counts: np.ndarray, *, max_rank: int = 50
                        ) -> _Partial:
    """Step 3: per-query AP (standard and interpolated), first match, INP, positives."""
    num_q = ptr.shape[0] - 1
    ap, ap_interp, inp = (np.empty(num_q, np.float64) for _ in range(3))
    first, npos = np.empty(num_q, np.int64), np.empty(num_q, np.int64)
    _metrics(ptr, np.ascontiguousarray(counts, np.int64), ap, ap_interp, first, inp, npos)
    return _Partial(ap, ap_interp, first, inp, npos, None)


def evaluate_sharded(query_features, shard_features, q_pids, shard_pids, q_camids=None,
                     shard_camids=None, *, metric: str = "euclidean",
                     normalisation: str = "none", protocol: str = "market",
                     max_rank: int = 50, average_precision: str = "standard",
                     query_gallery_index=None, rows: int | None = None,
                     group=None, verification: bool = True,
                     backend: str = "torch") -> RankResult:
    """This process's part of a sharded evaluation under ``torch.distributed`` (every
    process of ``group`` calls it with all the queries and its own gallery shard; shards
    are contiguous and in rank order). Returns the same :class:`RankResult` on every
    process, equal bit for bit to the one-process evaluation of the whole gallery.
    ``query_gallery_index`` (no-camera protocol) holds global gallery indices.
    ``verification`` adds TPR@FPR, exact as well: each shard keeps its own smallest
    negative distances, and the union of the shards' candidates holds the global ones."""
    import torch
    import torch.distributed as dist

    from reidcore.evaluation.distance import (
        as_array,
        as_tensor,
        check_finite,
        check_metric,
        iter_distance_chunks,
        l2_normalise,
        l2_normalise_array,
        numpy_backend_fits,
    )
    from reidcore.evaluation.ranking import prepare_labels

    check_metric(metric)
    if protocol not in ("market", "no-camera"):
        raise ReidError(f"sharded evaluation supports protocols 'market' and 'no-camera', "
                        f"not '{protocol}' (single-gallery-shot runs in one process)")
    query: Any
    shard: Any
    use_numpy = backend == "numpy" and numpy_backend_fits(query_features, shard_features,
                                                          metric)
    if use_numpy:  # as the one-process evaluation of NumPy features (reid eval)
        query, shard = as_array(query_features), as_array(shard_features)
        if normalisation == "l2":
            query, shard = l2_normalise_array(query), l2_normalise_array(shard)
    else:
        query, shard = as_tensor(query_features), as_tensor(shard_features)
        if normalisation == "l2":
            query, shard = l2_normalise(query), l2_normalise(shard)
    world = dist.get_world_size(group)
    shard_sizes = all_shard_sizes(shard.shape[0], group)
    offset = sum(shard_sizes[:dist.get_rank(group)])
    num_q, num_g = query.shape[0], sum(shard_sizes)
    q_pids, g_pids, q_camids, g_camids = prepare_labels(
        q_pids, shard_pids, q_camids, shard_camids, num_q, shard.shape[0], protocol)
    index = GalleryIndex.build(g_pids, g_camids)
    qg_index = (None if query_gallery_index is None
                else np.asarray(query_gallery_index, np.int64))
    check_finite(query, "the query features")
    check_finite(shard, f"the gallery features (shard {dist.get_rank(group)})")
    verify = None
    if verification:
        negatives = torch.tensor([negative_pairs(g_pids, q_pids)], dtype=torch.int64)
        dist.all_reduce(negatives, group=group)
        verify = VerificationPass(int(negatives.item()))
    # the same query chunks on every process
    rows = rows or max(1, 256 * 2**20 // (4 * max(shard_sizes)))
    parts = []
    for start, block in iter_distance_chunks(query, shard, metric, rows=rows,
                                             backend="numpy" if use_numpy else "torch"):
        stop = start + block.shape[0]
        sub = None if qg_index is None else qg_index[start:stop]
        mine = shard_positives(block, q_pids[start:stop],
                               None if q_camids is None else q_camids[start:stop], index,
                               offset=offset, protocol=protocol, query_gallery_index=sub)
        merged = merge_positives(_gather(mine, world, group))
        counts, nan_flag = shard_counts(block, q_pids[start:stop], index, merged,
                                        offset=offset, protocol=protocol,
                                        query_gallery_index=sub)
        reduced = torch.from_numpy(np.concatenate([counts, nan_flag.astype(np.int64)]))
        dist.all_reduce(reduced, group=group)
        total = reduced.numpy()
        if total[counts.shape[0]:].any():
            raise ReidError("the distance matrix holds NaN values; check the features")
        parts.append(metrics_from_counts(merged[0], total[:counts.shape[0]],
                                         max_rank=max_rank))
        if verify is not None:  # merged[1]: every positive of the chunk, on every shard
            verify.add(block, q_pids[start:stop], index.pids, merged[1])
    if num_g == 0 or not parts:
        raise ReidError("nothing to evaluate: the query set or the whole gallery is empty")
    result = combine(parts, max_rank=max_rank, protocol=protocol,
                     average_precision=average_precision)
    if verify is not None:
        positives = np.concatenate(verify.positives) if verify.positives else np.zeros(0)
        result = attrs.evolve(result, tpr_at_fpr=tpr_at_fpr(
            positives, _gather_values(verify.candidates(), world, group),
            verify.num_negatives, verify.fprs))
    return result


def torchrun_world_size() -> int:
    """The number of processes ``torchrun`` started (1 without it)."""
    import os

    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def torchrun_rank() -> int:
    import os

    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


@contextlib.contextmanager
def torchrun_group() -> Iterator[None]:
    """The default process group from ``torchrun``'s environment (gloo: CPU tensors),
    set up for the block and closed after it unless it was already there."""
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    dist.init_process_group("gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def all_shard_sizes(size: int, group=None) -> list[int]:
    """Every process's shard size, in rank order (its offset is the sum before it)."""
    import torch
    import torch.distributed as dist

    sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(dist.get_world_size(group))]
    dist.all_gather(sizes, torch.tensor([size], dtype=torch.int64), group=group)
    return [int(s.item()) for s in sizes]


def evaluate_shard_sets(config, query, gallery_shard, group=None) -> RankResult:
    """One process's part of a sharded evaluation: ``query`` holds all the queries,
    ``gallery_shard`` this process's contiguous block of the gallery (blocks in rank
    order of ``group``; their sizes may differ). The result, with bootstrap intervals, is
    the same on every process and equal bit for bit to the one-process evaluation of the
    whole gallery. What :func:`shard_refusal` names is refused here."""
    import torch.distributed as dist

    from reidcore.evaluation.bootstrap import with_intervals
    from reidcore.evaluation.protocol import query_gallery_index_from_paths, resolve_protocol

    refusal = shard_refusal(config)
    if refusal:
        raise ReidError(refusal)
    have_cams = query.camids is not None and gallery_shard.camids is not None
    protocol = resolve_protocol(config.protocol, have_cams)
    self_index = None
    if protocol == "no-camera":  # each query's own image, where it is in this shard
        sizes = all_shard_sizes(len(gallery_shard.pids), group)
        offset = sum(sizes[:dist.get_rank(group)])
        local = query_gallery_index_from_paths(query.paths, gallery_shard.paths)
        if local is not None:
            self_index = np.where(local >= 0, local + offset, -1)
    result = evaluate_sharded(
        query.features, gallery_shard.features, query.pids, gallery_shard.pids,
        query.camids if have_cams else None, gallery_shard.camids if have_cams else None,
        metric=config.metric, normalisation=config.normalisation, protocol=protocol,
        max_rank=max(config.max_rank, *config.ranks),
        average_precision=config.average_precision, query_gallery_index=self_index,
        rows=config.chunk_rows or None, group=group, verification=config.verification,
        backend="numpy")  # NumPy features (reid eval's) as in one process; tensors: torch
    if config.bootstrap:
        result = with_intervals(result, resamples=config.bootstrap,
                                confidence=config.confidence, seed=config.seed,
                                ranks=config.ranks)
    return attrs.evolve(result, distance=config.metric, normalisation=config.normalisation)


def evaluate_sets_sharded(config, query, gallery, group=None) -> RankResult:
    """``reid eval`` under ``torchrun --nproc N``: every process is given all the queries
    and the whole gallery (FeatureSets) and ranks against its contiguous shard ``rank``
    of the gallery only (:func:`evaluate_shard_sets`); the result is the same on every
    process and equal to the one-process evaluation."""
    import torch.distributed as dist

    refusal = shard_refusal(config)
    if refusal:
        raise ReidError(f"{refusal}: run reid eval without torchrun for it")
    start, stop = shard_bounds(len(gallery.pids), dist.get_world_size(group),
                               dist.get_rank(group))
    return evaluate_shard_sets(config, query, gallery.block(start, stop), group)


def _gather_values(values: np.ndarray, world: int, group) -> np.ndarray:
    """Every process's 1-d float array, concatenated in rank order."""
    import torch
    import torch.distributed as dist

    values = np.ascontiguousarray(values, np.float64)  # float32 distances are exact in it
    lengths = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
    dist.all_gather(lengths, torch.tensor([values.shape[0]], dtype=torch.int64), group=group)
    longest = max(int(n.item()) for n in lengths)
    padded = torch.zeros(longest, dtype=torch.float64)
    padded[:values.shape[0]] = torch.from_numpy(values)
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded, group=group)
    return np.concatenate([g.numpy()[:int(n.item())] for n, g in zip(lengths, gathered,
                                                                       strict=True)])


def _gather(mine, world: int, group) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every shard's step-1 lists, in rank order (padded to the longest for the
    collective)."""
    import torch
    import torch.distributed as dist

    sizes, vals, idx = mine
    lengths = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
    dist.all_gather(lengths, torch.tensor([vals.shape[0]], dtype=torch.int64), group=group)
    longest = max(int(n.item()) for n in lengths)
    packed = np.zeros((3, sizes.shape[0] + longest), np.float64)
    packed[0, :sizes.shape[0]] = sizes
    packed[1, :vals.shape[0]] = vals
    packed[2, :idx.shape[0]] = idx  # gallery indices below 2**53: exact in float64
    gathered = [torch.empty_like(torch.from_numpy(packed)) for _ in range(world)]
    dist.all_gather(gathered, torch.from_numpy(packed), group=group)
    out = []
    for n, g in zip(lengths, gathered, strict=True):
        arr = g.numpy()
        k = int(n.item())
        out.append((arr[0, :sizes.shape[0]].astype(np.int64), arr[1, :k].copy(),
                    arr[2, :k].astype(np.int64)))
    return out

"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017), numba-accelerated and memory-bounded.

:func:`k_reciprocal_rerank` takes the three distance matrices exactly as the published
code does (``q_g_dist``, ``q_q_dist``, ``g_g_dist``; they are squared and each row of the
joint ``N x N`` matrix is divided by its maximum) and returns the re-ranked ``Q x G``
distances. It computes the same quantities as the published algorithm evaluated in
float64, but never forms a dense ``N x N`` matrix:

* the ``max(k1 + 1, k2)`` nearest neighbours of every item are selected in one streaming
  pass over the joint matrix (which is never assembled; gallery columns are transposed
  a block at a time);
* the k-reciprocal expansion sets and their Gaussian weights (the rows of ``V``) are
  sparse, as is the local query expansion over ``k2`` neighbours;
* the Jaccard distance uses the inverted (column) index of the sparse ``V``.

Extra memory is ``O(N * (k1 + k2 * |expansion|))`` plus the ``Q x G`` float32 result,
instead of several dense ``N x N`` arrays. Ties in the neighbour ranking are broken by
index (a stable sort), where the published code's ``np.argsort`` is unstable; the
published code also keeps ``V`` and the Jaccard terms in float16, which moves its
results by up to about 1e-3 from the float64 algorithm (see the re-ranking benchmark).
"""

from __future__ import annotations

from collections.abc import Iterator

import numba
import numpy as np
import torch
from numba import prange

from reidcore.errors import ReidError
from reidcore.evaluation.distance import Prepared, _compute_dtype, as_tensor, check_metric
from reidcore.evaluation.memory import Budget, default_memory_bytes
from reidcore.progress import ProgressCounter

_BLOCK = 256


@numba.njit(cache=True, parallel=True, nogil=True)
def _block_topk(first, second, top, col_max, out_offset, K):
    """For each row b of the block, the row is ``concat(first[b], second[b])`` (one column
    of the joint matrix); stores its maximum square and its K smallest ``x*x/max``
    (stable order) in ``top[out_offset + b]``."""
    n1 = first.shape[1]
    n2 = second.shape[1]
    for b in prange(first.shape[0]):
        m = 0.0
        for j in range(n1):
            v = np.float64(first[b, j])
            v = v * v
            if v > m:
                m = v
        for j in range(n2):
            v = np.float64(second[b, j])
            v = v * v
            if v > m:
                m = v
        col_max[out_offset + b] = m
        keys = np.full(K, np.inf)
        idx = np.full(K, -1, np.int64)
        filled = 0
        worst = np.inf
        for j in range(n1 + n2):
            if j < n1:
                v = np.float64(first[b, j])
            else:
                v = np.float64(second[b, j - n1])
            key = (v * v) / m
            if filled < K or key < worst:
                # insert after every entry with a key <= this one (stable)
                pos = filled if filled < K else K - 1
                while pos > 0 and keys[pos - 1] > key:
                    if pos < K:
                        keys[pos] = keys[pos - 1]
                        idx[pos] = idx[pos - 1]
                    pos -= 1
                keys[pos] = key
                idx[pos] = j
                if filled < K:
                    filled += 1
                worst = keys[K - 1] if filled == K else np.inf
        for t in range(K):
            top[out_offset + b, t] = idx[t]


@numba.njit(cache=True, parallel=True, nogil=True)
def _transpose_columns(src, start, stop, dst):
    """``dst[c - start, r] = src[r, c]`` for ``start <= c < stop``, in cache-sized tiles."""
    rows = src.shape[0]
    for tile in prange((rows + 63) // 64):
        r0 = tile * 64
        r1 = min(rows, r0 + 64)
        for c in range(start, stop):
            for r in range(r0, r1):
                dst[c - start, r] = src[r, c]


@numba.njit(cache=True, parallel=True, nogil=True)
def _count_non_finite(a):
    bad = 0
    for r in prange(a.shape[0]):
        for c in range(a.shape[1]):
            v = a[r, c]
            if not np.isfinite(v):
                bad += 1
    return bad


@numba.njit(cache=True, inline="always")
def _orig(r, c, qq, qg, gg, Q):
    """Entry (r, c) of the joint matrix ``[[qq, qg], [qg.T, gg]]``."""
    if r < Q:
        if c < Q:
            return np.float64(qq[r, c])
        return np.float64(qg[r, c - Q])
    if c < Q:
        return np.float64(qg[c, r - Q])
    return np.float64(gg[r - Q, c - Q])


@numba.njit(cache=True, nogil=True)
def _contains(top, row, width, value):
    for t in range(width):
        if top[row, t] == value:
            return True
    return False


@numba.njit(cache=True, parallel=True, nogil=True)
def _reciprocal(top, width, sets, sizes):
    """k-reciprocal neighbours of every item among its first ``width`` neighbours."""
    N = top.shape[0]
    for i in prange(N):
        n = 0
        for t in range(width):
            c = top[i, t]
            if _contains(top, c, width, i):
                sets[i, n] = c
                n += 1
        sizes[i] = n


@numba.njit(cache=True, parallel=True, nogil=True)
def _expansion_sets(recip, recip_size, half, half_size, exp_idx, exp_size):
    """Rows of V (their columns): the expanded k-reciprocal set of each item, sorted."""
    N = recip.shape[0]
    cap = exp_idx.shape[1]
    for i in prange(N):
        buf = np.empty(cap, np.int64)
        n = 0
        ri = recip_size[i]
        for t in range(ri):
            buf[n] = recip[i, t]
            n += 1
        for t in range(ri):
            c = recip[i, t]
            hc = half_size[c]
            common = 0
            for a in range(hc):
                x = half[c, a]
                for s in range(ri):
                    if recip[i, s] == x:
                        common += 1
                        break
            if common > 2.0 / 3.0 * hc:
                for a in range(hc):
                    buf[n] = half[c, a]
                    n += 1
        uniq = np.unique(buf[:n])
        for t in range(uniq.shape[0]):
            exp_idx[i, t] = uniq[t]
        exp_size[i] = uniq.shape[0]


@numba.njit(cache=True, parallel=True, nogil=True)
def _dense_pair_distances(exp_idx, exp_size, qq, qg, gg, Q, out):
    """``out[i, t]`` = entry ``(exp_idx[i, t], i)`` of the joint distance matrix."""
    for i in prange(exp_idx.shape[0]):
        for t in range(exp_size[i]):
            out[i, t] = _orig(exp_idx[i, t], i, qq, qg, gg, Q)


@numba.njit(cache=True, parallel=True, nogil=True)
def _feature_pair_distances(exp_idx, exp_size, feats, sq, metric, out):
    """``out[i, t]`` = distance between items ``exp_idx[i, t]`` and ``i``, from features
    (``metric``: 0 euclidean, 1 sqeuclidean, 2 cosine on normalised features, 3 l1), by
    the formulas of :class:`~reidcore.evaluation.distance.Prepared`, in float64."""
    D = feats.shape[1]
    for i in prange(exp_idx.shape[0]):
        for t in range(exp_size[i]):
            e = exp_idx[i, t]
            acc = 0.0
            if metric == 3:
                for k in range(D):
                    acc += abs(np.float64(feats[e, k]) - np.float64(feats[i, k]))
                out[i, t] = acc
                continue
            for k in range(D):
                acc += np.float64(feats[e, k]) * np.float64(feats[i, k])
            if metric == 2:
                out[i, t] = 1.0 - acc
                continue
            d2 = max(0.0, sq[e] + sq[i] - 2.0 * acc)
            out[i, t] = np.sqrt(d2) if metric == 0 else d2


@numba.njit(cache=True, parallel=True, nogil=True)
def _expansion_weights(exp_w, exp_size, col_max):
    """Distances (in ``exp_w``) to the softmax weights of the rows of V, in place."""
    for i in prange(exp_w.shape[0]):
        m = col_max[i]
        total = 0.0
        for t in range(exp_size[i]):
            d = exp_w[i, t]
            w = np.exp(-((d * d) / m))
            exp_w[i, t] = w
            total += w
        for t in range(exp_size[i]):
            exp_w[i, t] /= total


@numba.njit(cache=True, parallel=True, nogil=True)
def _query_expansion(top, k2, exp_idx, exp_w, exp_size, n_blocks, pass_fill, indptr,
                     out_idx, out_w, out_size):
    """Rows of V after local query expansion: the mean of the rows of the k2 nearest.

    First pass (``pass_fill=False``) counts each row's nonzeros into ``out_size``; the
    second fills ``out_idx``/``out_w`` from ``indptr`` (sorted by column)."""
    N = top.shape[0]
    per = (N + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        acc = np.zeros(N, np.float64)
        seen = np.zeros(N, np.bool_)
        touched = np.empty(N, np.int64)
        for i in range(blk * per, min(N, (blk + 1) * per)):
            nt = 0
            for t in range(k2):
                r = top[i, t]
                for s in range(exp_size[r]):
                    e = exp_idx[r, s]
                    if not seen[e]:
                        seen[e] = True
                        touched[nt] = e
                        nt += 1
                    acc[e] += exp_w[r, s]
            if pass_fill:
                cols = np.sort(touched[:nt])
                base = indptr[i]
                for s in range(nt):
                    e = cols[s]
                    out_idx[base + s] = e
                    out_w[base + s] = acc[e] / k2
            else:
                out_size[i] = nt
            for s in range(nt):
                e = touched[s]
                acc[e] = 0.0
                seen[e] = False


@numba.njit(cache=True, nogil=True)
def _transpose_csr(indptr, idx, w, N):
    counts = np.zeros(N + 1, np.int64)
    for s in range(idx.shape[0]):
        counts[idx[s] + 1] += 1
    col_ptr = np.cumsum(counts)
    fill = col_ptr[:-1].copy()
    rows = np.empty(idx.shape[0], np.int64)
    vals = np.empty(idx.shape[0], np.float64)
    for r in range(N):  # rows in increasing order: each column's list is sorted by row
        for s in range(indptr[r], indptr[r + 1]):
            c = idx[s]
            rows[fill[c]] = r
            vals[fill[c]] = w[s]
            fill[c] += 1
    return col_ptr, rows, vals


@numba.njit(cache=True, parallel=True, nogil=True)
def _jaccard_block(indptr, idx, w, col_ptr, col_rows, col_vals, qg, row_start, Q, col_max,
                   lam, n_blocks, out):
    """Final distances of queries ``row_start + b`` (``qg[b]``: their original distances to
    the gallery): the Jaccard distance of their rows of V to the gallery's, blended with
    the original distance; ``out`` may be ``qg`` itself."""
    B = qg.shape[0]
    G = qg.shape[1]
    per = (B + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        acc = np.zeros(G, np.float64)
        for b in range(blk * per, min(B, (blk + 1) * per)):
            i = row_start + b
            for s in range(indptr[i], indptr[i + 1]):
                c = idx[s]
                vi = w[s]
                for t in range(col_ptr[c], col_ptr[c + 1]):
                    r = col_rows[t]
                    if r >= Q:
                        vr = col_vals[t]
                        acc[r - Q] += vi if vi < vr else vr
            m = col_max[i]
            for g in range(G):
                tm = acc[g]
                jac = 1.0 - tm / (2.0 - tm)
                d = np.float64(qg[b, g])
                out[b, g] = jac * (1.0 - lam) + ((d * d) / m) * lam
                acc[g] = 0.0


def _as_matrix(name: str, value, shape: tuple[int, int]) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float32)
    if array.shape != shape:
        raise ReidError(f"{name} must have shape {shape}, got {array.shape}")
    array = np.ascontiguousarray(array)
    if array.size and _count_non_finite(array):
        raise ReidError(f"{name} holds non-finite values")
    return array


def k_reciprocal_rerank(q_g_dist, q_q_dist, g_g_dist, *, k1: int = 20, k2: int = 6,
                        lambda_value: float = 0.3) -> np.ndarray:
    """Re-ranked query x gallery distances (float32), as in Zhong et al. (CVPR 2017).

    The inputs are what the published code takes: query-gallery, query-query and
    gallery-gallery distances (NumPy arrays or tensors). See the module docstring for
    how this implementation differs in cost, and not in result, from the published code.
    """
    if k1 < 1 or k2 < 1:
        raise ReidError(f"re-ranking needs k1 >= 1 and k2 >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ReidError(f"re-ranking lambda_value must be in [0, 1], got {lambda_value}")
    q_g_dist = np.asarray(q_g_dist.cpu() if hasattr(q_g_dist, "cpu") else q_g_dist)
    if q_g_dist.ndim != 2:
        raise ReidError(f"q_g_dist must be 2-d, got shape {q_g_dist.shape}")
    Q, G = q_g_dist.shape
    qg = _as_matrix("q_g_dist", q_g_dist, (Q, G))
    qq = _as_matrix("q_q_dist", q_q_dist.cpu() if hasattr(q_q_dist, "cpu") else q_q_dist,
                    (Q, Q))
    gg = _as_matrix("g_g_dist", g_g_dist.cpu() if hasattr(g_g_dist, "cpu") else g_g_dist,
                    (G, G))
    # a bar on a terminal: one tick per neighbour block, one per later stage
    with ProgressCounter(total=-(-Q // _BLOCK) - (-G // _BLOCK) + 3, desc="re-ranking",
                         unit="step") as bar:
        return _rerank(qg, qq, gg, Q, G, k1, k2, lambda_value, bar)


def _rerank(qg: np.ndarray, qq: np.ndarray, gg: np.ndarray, Q: int, G: int, k1: int,
            k2: int, lambda_value: float, bar: ProgressCounter) -> np.ndarray:
    N = Q + G
    K = _widths(N, k1, k2)[-1]

    # 1. neighbours: row i of the published (transposed, normalised) matrix is column i
    #    of the joint matrix; query columns are rows of qq.T and qg, gallery columns are
    #    transposed a block at a time.
    top = np.empty((N, K), np.int64)
    col_max = np.empty(N, np.float64)
    first = np.empty((min(_BLOCK, N), Q), qq.dtype)
    for start in range(0, Q, _BLOCK):
        stop = min(Q, start + _BLOCK)
        _transpose_columns(qq, start, stop, first)
        _block_topk(first[:stop - start], qg[start:stop], top, col_max, start, K)
        bar.update()
    first = np.empty((min(_BLOCK, G), Q), qg.dtype)
    second = np.empty((min(_BLOCK, G), G), gg.dtype)
    for start in range(0, G, _BLOCK):
        stop = min(G, start + _BLOCK)
        _transpose_columns(qg, start, stop, first)
        _transpose_columns(gg, start, stop, second)
        _block_topk(first[:stop - start], second[:stop - start], top, col_max, Q + start, K)
        bar.update()
    del first, second

    def distances(exp_idx: np.ndarray, exp_size: np.ndarray, out: np.ndarray) -> None:
        _dense_pair_distances(exp_idx, exp_size, qq, qg, gg, Q, out)

    v = _sparse_v(top, col_max, k1, k2, distances, None, bar)
    out = np.empty((Q, G), np.float32)
    _jaccard_block(*v, qg, 0, Q, col_max, float(lambda_value),
                   max(1, min(Q, 4 * numba.get_num_threads())), out)
    bar.update()
    return out


def _widths(N: int, k1: int, k2: int) -> tuple[int, int, int, int]:
    """``(width_k1, width_half, k2_eff, K)``: neighbour-list widths of the algorithm."""
    half = int(np.around(k1 / 2.0))
    width_k1 = min(k1 + 1, N)
    width_half = min(half + 1, N)
    k2_eff = min(k2, N)
    return width_k1, width_half, k2_eff, max(width_k1, k2_eff, width_half)


_SparseV = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _sparse_v(top: np.ndarray, col_max: np.ndarray, k1: int, k2: int, distances,
              budget: Budget | None, bar: ProgressCounter) -> _SparseV:
    """The rows of V after local query expansion (CSR) and their inverted index:
    ``(indptr, idx, w, col_ptr, col_rows, col_vals)``. ``distances(exp_idx, exp_size,
    out)`` fills the original distances between each item and its expansion set."""
    N = top.shape[0]
    if (col_max <= 0).any():
        raise ReidError("re-ranking needs, for every image, some non-zero distance")
    width_k1, width_half, k2_eff, _ = _widths(N, k1, k2)

    # 2. k-reciprocal sets, expanded with the half-size sets, and their weights (V)
    recip = np.empty((N, width_k1), np.int64)
    recip_size = np.empty(N, np.int64)
    _reciprocal(top, width_k1, recip, recip_size)
    half_sets = np.empty((N, width_half), np.int64)
    half_size = np.empty(N, np.int64)
    _reciprocal(top, width_half, half_sets, half_size)
    cap = width_k1 * (1 + width_half)
    exp_idx = np.empty((N, cap), np.int64)
    exp_w = np.empty((N, cap), np.float64)
    exp_size = np.empty(N, np.int64)
    _expansion_sets(recip, recip_size, half_sets, half_size, exp_idx, exp_size)
    del recip, half_sets
    distances(exp_idx, exp_size, exp_w)
    _expansion_weights(exp_w, exp_size, col_max)
    bar.update()

    # 3. local query expansion (V_qe), as CSR rows
    n_blocks = max(1, min(N, 4 * numba.get_num_threads()))
    if k2_eff != 1:
        sizes = np.empty(N, np.int64)
        dummy_i = np.empty(0, np.int64)
        dummy_w = np.empty(0, np.float64)
        _query_expansion(top, k2_eff, exp_idx, exp_w, exp_size, n_blocks, False,
                         np.zeros(N + 1, np.int64), dummy_i, dummy_w, sizes)
        indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        if budget is not None:  # V and its inverted index: 32 bytes a nonzero
            budget.check(32 * int(indptr[-1]), "the sparse k-reciprocal encodings "
                         f"({int(indptr[-1]):,} nonzeros and their inverted index)")
        v_idx = np.empty(indptr[-1], np.int64)
        v_w = np.empty(indptr[-1], np.float64)
        _query_expansion(top, k2_eff, exp_idx, exp_w, exp_size, n_blocks, True, indptr,
                         v_idx, v_w, sizes)
    else:
        indptr = np.concatenate([[0], np.cumsum(exp_size)]).astype(np.int64)
        mask = np.arange(cap)[None, :] < exp_size[:, None]
        v_idx = exp_idx[mask]
        v_w = exp_w[mask]
    del exp_idx, exp_w
    bar.update()

    # 4. the inverted index of V for the Jaccard distance
    col_ptr, col_rows, col_vals = _transpose_csr(indptr, v_idx, v_w, N)
    return indptr, v_idx, v_w, col_ptr, col_rows, col_vals


# ------------------------------------------------------------------- from features


_METRIC_CODES = {"euclidean": 0, "sqeuclidean": 1, "cosine": 2, "l1": 3}


@numba.njit(cache=True, inline="always")
def _insert(top_val, top_idx, item, v, j):
    """Insert neighbour ``j`` at distance ``v`` into ``item``'s sorted list if it beats
    the last entry in (distance, index) order."""
    K = top_val.shape[1]
    worst = top_val[item, K - 1]
    if v < worst or (v == worst and j < top_idx[item, K - 1]):
        pos = K - 1
        while pos > 0 and (top_val[item, pos - 1] > v or (
                top_val[item, pos - 1] == v and top_idx[item, pos - 1] > j)):
            top_val[item, pos] = top_val[item, pos - 1]
            top_idx[item, pos] = top_idx[item, pos - 1]
            pos -= 1
        top_val[item, pos] = v
        top_idx[item, pos] = j


@numba.njit(cache=True, parallel=True, nogil=True)
def _update_topk(block, row0, col0, top_val, top_idx, row_max):
    """Fold a distance block into the running neighbour lists of the block's rows: item
    ``row0 + b`` sees item ``col0 + c`` at ``block[b, c]``. Lists stay sorted by
    (distance, index); ``row_max`` keeps each item's largest squared distance."""
    R, C = block.shape
    for b in prange(R):
        item = row0 + b
        m = row_max[item]
        for c in range(C):
            v = np.float64(block[b, c])
            if v * v > m:
                m = v * v
            _insert(top_val, top_idx, item, v, col0 + c)
        row_max[item] = m


@numba.njit(cache=True, parallel=True, nogil=True)
def _update_topk_columns(block, row0, col0, top_val, top_idx, row_max):
    """As :func:`_update_topk` for the block's columns (the mirrored block): item
    ``col0 + c`` sees item ``row0 + b`` at ``block[b, c]``; columns are taken 16 at a
    time, so each thread reads the block row by row."""
    R, C = block.shape
    for group in prange((C + 15) // 16):
        c0 = group * 16
        c1 = min(C, c0 + 16)
        for b in range(R):
            for c in range(c0, c1):
                item = col0 + c
                v = np.float64(block[b, c])
                if v * v > row_max[item]:
                    row_max[item] = v * v
                _insert(top_val, top_idx, item, v, row0 + b)


def rerank_plan(num_query: int, num_gallery: int, dim: int, *, k1: int = 20, k2: int = 6,
                itemsize: int = 4, memory_bytes: int) -> dict[str, int]:
    """Block sizes for :func:`iter_reranked_chunks` within ``memory_bytes`` of working
    memory: ``{"block": ..., "rows": ..., "planned_bytes": ...}``; a ReidError (with
    the memory it would need) when even the smallest blocks do not fit."""
    N = num_query + num_gallery
    width_k1, width_half, _, K = _widths(N, k1, k2)
    cap = width_k1 * (1 + width_half)
    budget = Budget(memory_bytes, f"re-ranking {num_query:,} queries x {num_gallery:,} "
                                   "gallery images")
    budget.take(N * dim * itemsize + 8 * N, "the joint query + gallery features")
    budget.take(N * K * 16 + 8 * N, "the neighbour lists")
    budget.take(N * cap * 16 + N * (width_k1 + width_half) * 8,
                "the k-reciprocal expansion sets and weights")
    # distance blocks: the block, its float64 transpose for the second half, torch's
    # temporaries; the final blocks: distances + their re-ranked values + ranking scratch
    smallest_block, smallest_rows = min(N, 64), 1
    budget.check(16 * smallest_block ** 2 + 12 * smallest_rows * num_gallery,
                 "the smallest distance blocks")
    left = budget.left
    block = int(min(N, 4096, max(smallest_block, np.sqrt(left / 2 / 16))))
    rows = int(min(num_query, max(1, left / 2 / (12 * num_gallery)),
                   max(1, 256 * 2**20 // (4 * num_gallery))))
    return {"block": block, "rows": rows, "planned_bytes": budget.used}


def iter_reranked_chunks(query, gallery, metric: str = "euclidean", *, k1: int = 20,
                         k2: int = 6, lambda_value: float = 0.3,
                         memory_bytes: int | None = None, block: int | None = None,
                         rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Re-ranked distances from features, as ``(first_query_row, rows x G float32)``
    chunks (like :func:`~reidcore.evaluation.distance.iter_distance_chunks`), without any
    ``N x N`` or ``Q x G`` matrix.

    The neighbour lists come from distance blocks of the joint query + gallery set
    computed on the fly, each pair of blocks once (the matrix is symmetric); the sparse
    k-reciprocal encodings follow as in :func:`k_reciprocal_rerank`, and the final
    distances are produced a chunk of queries at a time, each with its query x gallery
    distances recomputed. The result equals :func:`k_reciprocal_rerank` of the dense
    matrices to float32 rounding of the distances (the dense path reads a distance as
    entry ``(j, i)`` of the joint matrix, this one as ``(i, j)``, and recomputes in
    float64 the few distances between an item and its expansion set). Working memory
    stays within ``memory_bytes`` (default: half the machine's memory), checked before
    anything large is allocated.
    """
    check_metric(metric)
    if k1 < 1 or k2 < 1:
        raise ReidError(f"re-ranking needs k1 >= 1 and k2 >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ReidError(f"re-ranking lambda_value must be in [0, 1], got {lambda_value}")
    query = as_tensor(query)
    gallery = as_tensor(gallery)
    if query.shape[1] != gallery.shape[1]:
        raise ReidError(f"query and gallery features differ in dimension: "
                        f"{query.shape[1]} vs {gallery.shape[1]}")
    dtype = _compute_dtype(query, gallery)
    Q, G, dim = query.shape[0], gallery.shape[0], query.shape[1]
    N = Q + G
    if memory_bytes is None:
        memory_bytes = default_memory_bytes()
    plan = rerank_plan(Q, G, dim, k1=k1, k2=k2, itemsize=dtype.itemsize,
                       memory_bytes=memory_bytes)
    budget = Budget(memory_bytes, f"re-ranking {Q:,} queries x {G:,} gallery images")
    budget.used = plan["planned_bytes"]
    block = min(N, block or plan["block"])
    rows = min(Q, rows or plan["rows"])
    K = _widths(N, k1, k2)[-1]
    n_row_blocks = -(-N // block)
    with torch.no_grad():
        joint = torch.cat([query.to("cpu", dtype), gallery.to("cpu", dtype)])
        prepared = Prepared(joint, metric, dtype)
        del joint
        feats = np.ascontiguousarray(prepared.gallery.numpy())
        sq = (prepared.g_sq.to(torch.float64).numpy() if prepared.g_sq is not None
              else np.zeros(N, np.float64))
        if metric in ("euclidean", "sqeuclidean"):  # float64 norms for the pair distances
            sq = np.einsum("ij,ij->i", feats, feats, dtype=np.float64)
        with ProgressCounter(total=n_row_blocks * (n_row_blocks + 1) // 2 + 2 + -(-Q // rows),
                             desc="re-ranking", unit="block") as bar:
            # 1. neighbours from symmetric distance blocks, each pair of blocks once
            top_val = np.full((N, K), np.inf)
            top_idx = np.full((N, K), N, np.int64)
            row_max = np.zeros(N, np.float64)
            for r0 in range(0, N, block):
                rows_features = prepared.gallery[r0:r0 + block]
                for c0 in range(r0, N, block):
                    dist = prepared.block(rows_features, c0, c0 + block).numpy()
                    _update_topk(dist, r0, c0, top_val, top_idx, row_max)
                    if c0 != r0:
                        _update_topk_columns(dist, r0, c0, top_val, top_idx, row_max)
                    del dist
                    bar.update()
            del top_val

            def distances(exp_idx: np.ndarray, exp_size: np.ndarray, out: np.ndarray
                          ) -> None:
                _feature_pair_distances(exp_idx, exp_size, feats, sq, _METRIC_CODES[metric],
                                        out)

            v = _sparse_v(top_idx, row_max, k1, k2, distances, budget, bar)
            del top_idx
            n_blocks = max(1, min(rows, 4 * numba.get_num_threads()))
            for start in range(0, Q, rows):
                stop = min(Q, start + rows)
                qg = prepared.block(prepared.gallery[start:stop], Q, N).to(torch.float32)
                out = qg.numpy()
                _jaccard_block(*v, out, start, Q, row_max, float(lambda_value), n_blocks,
                               out)
                bar.update()
                yield start, out

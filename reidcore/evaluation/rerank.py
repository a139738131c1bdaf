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

import numba
import numpy as np
from numba import prange

from reidcore.errors import ReidError
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
def _expansion_weights(recip, recip_size, half, half_size, col_max, qq, qg, gg, Q,
                       exp_idx, exp_w, exp_size):
    """Rows of V: the expanded k-reciprocal set of each item and its softmax weights."""
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
        m = col_max[i]
        total = 0.0
        for t in range(uniq.shape[0]):
            e = uniq[t]
            d = _orig(e, i, qq, qg, gg, Q)
            w = np.exp(-((d * d) / m))
            exp_idx[i, t] = e
            exp_w[i, t] = w
            total += w
        for t in range(uniq.shape[0]):
            exp_w[i, t] /= total
        exp_size[i] = uniq.shape[0]


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
def _jaccard_final(indptr, idx, w, col_ptr, col_rows, col_vals, qg, col_max, lam, n_blocks,
                   out):
    Q = qg.shape[0]
    G = qg.shape[1]
    N = Q + G
    per = (Q + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        acc = np.zeros(N, np.float64)
        for i in range(blk * per, min(Q, (blk + 1) * per)):
            for s in range(indptr[i], indptr[i + 1]):
                c = idx[s]
                vi = w[s]
                for t in range(col_ptr[c], col_ptr[c + 1]):
                    vr = col_vals[t]
                    acc[col_rows[t]] += vi if vi < vr else vr
            m = col_max[i]
            for g in range(G):
                tm = acc[Q + g]
                jac = 1.0 - tm / (2.0 - tm)
                d = np.float64(qg[i, g])
                out[i, g] = jac * (1.0 - lam) + ((d * d) / m) * lam
            for s in range(indptr[i], indptr[i + 1]):
                c = idx[s]
                for t in range(col_ptr[c], col_ptr[c + 1]):
                    acc[col_rows[t]] = 0.0


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
    half = int(np.around(k1 / 2.0))
    width_k1 = min(k1 + 1, N)
    width_half = min(half + 1, N)
    k2_eff = min(k2, N)
    K = max(width_k1, k2_eff, width_half)

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
    if (col_max <= 0).any():
        raise ReidError("re-ranking needs, for every image, some non-zero distance")

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
    _expansion_weights(recip, recip_size, half_sets, half_size, col_max, qq, qg, gg, Q,
                       exp_idx, exp_w, exp_size)
    del recip, half_sets
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
        v_idx = np.empty(indptr[-1], np.int64)
        v_w = np.empty(indptr[-1], np.float64)
        _query_expansion(top, k2_eff, exp_idx, exp_w, exp_size, n_blocks, True, indptr,
                         v_idx, v_w, sizes)
    else:
        indptr = np.concatenate([[0], np.cumsum(exp_size)]).astype(np.int64)
        mask = np.arange(cap)[None, :] < exp_size[:, None]
        v_idx = exp_idx[mask]
        v_w = exp_w[mask]
    del exp_idx, exp_w, top
    bar.update()

    # 4. Jaccard distance through the inverted index, blended with the original distance
    col_ptr, col_rows, col_vals = _transpose_csr(indptr, v_idx, v_w, N)
    out = np.empty((Q, G), np.float32)
    _jaccard_final(indptr, v_idx, v_w, col_ptr, col_rows, col_vals, qg, col_max,
                   float(lambda_value), max(1, min(Q, 4 * numba.get_num_threads())), out)
    bar.update()
    return out

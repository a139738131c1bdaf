"""Plain NumPy reference implementations: slow, obvious, and independent of the kernels.

The tests check the numba kernels against these, and the benchmarks measure the speed-up
over them. They follow the published algorithms line by line (full stable argsort of
every row for ranking; dense N x N matrices for re-ranking) and make no attempt at speed.
"""

from __future__ import annotations

import numpy as np

MASK64 = (1 << 64) - 1


def reference_rank(distmat, q_pids, g_pids, q_camids=None, g_camids=None, *,
                   max_rank=50, protocol="market", query_gallery_index=None,
                   interpolated=False):
    """Per-query ``(ap, first_rank, inp, valid)`` and summary ``(cmc, mAP, mINP)``.

    ``first_rank`` is 1-based. Follows torchreid's ``eval_market1501`` with a stable sort,
    junk (pid -1) removal and the no-camera protocol added.
    """
    distmat = np.asarray(distmat)
    q_pids = np.asarray(q_pids)
    g_pids = np.asarray(g_pids)
    num_q, num_g = distmat.shape
    aps = np.full(num_q, np.nan)
    inps = np.full(num_q, np.nan)
    firsts = np.zeros(num_q, np.int64)
    valid = np.zeros(num_q, bool)
    all_cmc = []
    for q in range(num_q):
        order = np.argsort(distmat[q], kind="stable")
        if protocol == "no-camera":
            remove = np.zeros(num_g, bool)
            if query_gallery_index is not None and query_gallery_index[q] >= 0:
                remove[order == query_gallery_index[q]] = True
        else:
            remove = (g_pids[order] == q_pids[q]) & (np.asarray(g_camids)[order]
                                                    == q_camids[q])
        remove |= g_pids[order] == -1
        matches = (g_pids[order] == q_pids[q])[~remove].astype(np.int64)
        if not matches.any():
            continue
        valid[q] = True
        cmc = matches.cumsum()
        cmc[cmc > 1] = 1
        cmc = np.concatenate([cmc, np.ones(max(0, max_rank - len(cmc)), np.int64)])
        all_cmc.append(cmc[:max_rank])
        hit_positions = np.flatnonzero(matches)
        firsts[q] = hit_positions[0] + 1
        num_rel = matches.sum()
        if interpolated:
            ap = 0.0
            for i, row in enumerate(hit_positions):
                precision = (i + 1) / (row + 1)
                old = i / row if row != 0 else 1.0
                ap += (old + precision) / 2 / num_rel
        else:
            precision_at = matches.cumsum() / (np.arange(len(matches)) + 1.0)
            ap = (precision_at * matches).sum() / num_rel
        aps[q] = ap
        inps[q] = matches.cumsum()[hit_positions[-1]] / (hit_positions[-1] + 1.0)
    if not valid.any():
        return {"ap": aps, "first": firsts, "inp": inps, "valid": valid,
                "cmc": np.zeros(max_rank), "mAP": np.nan, "mINP": np.nan}
    cmc = np.asarray(all_cmc, np.float64).sum(0) / valid.sum()
    return {"ap": aps, "first": firsts, "inp": inps, "valid": valid, "cmc": cmc,
            "mAP": float(np.nanmean(aps)), "mINP": float(np.nanmean(inps))}


def _splitmix(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def reference_draw(seed: int, query: int, repeat: int, group: int, n: int) -> int:
    """The counter-based draw of the single-gallery-shot protocol, in Python integers."""
    h = _splitmix((seed + 0x9E3779B97F4A7C15) & MASK64)
    h = _splitmix(h ^ query)
    h = _splitmix(h ^ repeat)
    h = _splitmix(h ^ group)
    return h % n


def reference_sgs_cmc(distmat, q_pids, g_pids, q_camids, g_camids, *, max_rank=50,
                      repeats=10, seed=0):
    """CUHK03 single-gallery-shot CMC, drawing items per identity with the same draws."""
    distmat = np.asarray(distmat)
    g_pids = np.asarray(g_pids)
    g_camids = np.asarray(g_camids)
    group_pids = np.unique(g_pids[g_pids != -1])
    cmcs = []
    for q in range(distmat.shape[0]):
        if q_pids[q] not in group_pids:
            continue
        own = int(np.flatnonzero(group_pids == q_pids[q])[0])
        own_items = np.flatnonzero((g_pids == q_pids[q]) & (g_camids != q_camids[q]))
        if own_items.size == 0:
            continue
        cmc = np.zeros(max_rank)
        for rep in range(repeats):
            chosen = []
            for grp, pid in enumerate(group_pids):
                items = own_items if grp == own else np.flatnonzero(g_pids == pid)
                chosen.append(items[reference_draw(seed, q, rep, grp, len(items))])
            chosen = np.sort(np.asarray(chosen))
            order = chosen[np.argsort(distmat[q, chosen], kind="stable")]
            hit = (g_pids[order] == q_pids[q]).astype(np.int64).cumsum()
            hit[hit > 1] = 1
            hit = np.concatenate([hit, np.ones(max(0, max_rank - len(hit)))])
            cmc += hit[:max_rank]
        cmcs.append(cmc / repeats)
    return np.mean(cmcs, axis=0)


def reference_rerank(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3, *,
                     dtype=np.float64, dist_dtype=None, sort_kind="stable"):
    """k-reciprocal re-ranking (Zhong et al., CVPR 2017) as published, with dense arrays.

    ``dtype=np.float64`` (default) evaluates everything in float64; the common
    implementations (the authors' code, torchreid, fast-reid) correspond to
    ``dtype=np.float16, dist_dtype=np.float32, sort_kind="quicksort"``.
    """
    dist_dtype = dtype if dist_dtype is None else dist_dtype
    original_dist = np.concatenate(
        [np.concatenate([q_q_dist, q_g_dist], axis=1),
         np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0).astype(dist_dtype)
    original_dist = np.power(original_dist, 2).astype(dist_dtype)
    original_dist = np.transpose(1.0 * original_dist / np.max(original_dist, axis=0))
    original_dist = original_dist.astype(dist_dtype)
    V = np.zeros_like(original_dist).astype(dtype)
    initial_rank = np.argsort(original_dist, kind=sort_kind).astype(np.int32)
    query_num = q_g_dist.shape[0]
    all_num = original_dist.shape[0]
    half = int(np.around(k1 / 2.0))
    for i in range(all_num):
        forward_k_neigh_index = initial_rank[i, :k1 + 1]
        backward_k_neigh_index = initial_rank[forward_k_neigh_index, :k1 + 1]
        fi = np.where(backward_k_neigh_index == i)[0]
        k_reciprocal_index = forward_k_neigh_index[fi]
        k_reciprocal_expansion_index = k_reciprocal_index
        for j in range(len(k_reciprocal_index)):
            candidate = k_reciprocal_index[j]
            candidate_forward = initial_rank[candidate, :half + 1]
            candidate_backward = initial_rank[candidate_forward, :half + 1]
            fi_candidate = np.where(candidate_backward == candidate)[0]
            candidate_k_reciprocal_index = candidate_forward[fi_candidate]
            if len(np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index)) > \
                    2.0 / 3 * len(candidate_k_reciprocal_index):
                k_reciprocal_expansion_index = np.append(k_reciprocal_expansion_index,
                                                         candidate_k_reciprocal_index)
        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
        V[i, k_reciprocal_expansion_index] = 1.0 * weight / np.sum(weight)
    original_dist = original_dist[:query_num, ]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=dtype)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
    invIndex = [np.where(V[:, i] != 0)[0] for i in range(all_num)]
    jaccard_dist = np.zeros_like(original_dist, dtype=dtype)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, all_num], dtype=dtype)
        indNonZero = np.where(V[i, :] != 0)[0]
        indImages = [invIndex[ind] for ind in indNonZero]
        for j in range(len(indNonZero)):
            temp_min[0, indImages[j]] = temp_min[0, indImages[j]] + np.minimum(
                V[i, indNonZero[j]], V[indImages[j], indNonZero[j]])
        jaccard_dist[i] = 1 - temp_min / (2.0 - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:query_num, query_num:]

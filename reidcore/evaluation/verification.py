"""Verification figures of a ranking: TPR at FPR = 1e-4, 1e-3, 1e-2, from the same
streamed pass as CMC and mAP (no query x gallery matrix is kept).

Definition (the verification convention): every (query, gallery item) pair that the
protocol keeps is a *positive* pair (same identity) or a *negative* pair (different
identity, distractors included); junk items (pid -1), same-identity same-camera items and
the query's own image are not pairs, exactly as for mAP. A pair is accepted when its
distance is below a threshold ``t``; FPR(t) is the share of negative pairs accepted,
TPR(t) the share of positive pairs accepted. ``TPR@FPR=f`` uses the largest threshold whose
FPR does not exceed ``f``: the share of positive pairs strictly closer than the
``(floor(f * negatives) + 1)``-th closest negative pair. Queries without a positive still
contribute their negative pairs.

fast-reid's ``evaluation/roc.py`` reports "TPR@FPR" with the classes the other way round
(its ``roc_curve`` labels negative pairs 1 with the distance as score, so its "TPR" is the
share of different-identity pairs *rejected* and its "FPR" the share of same-identity pairs
rejected) and takes the ROC point nearest to each FPR; its figures are therefore not the
ones here, which follow the face-verification meaning (same identity accepted at a given
rate of impostors accepted).

Cost: the positives' distances (few) and, for the negatives, only the smallest
``floor(f_max * negatives) + 1`` distances are needed. One sequential numba pass per
chunk keeps them in a buffer of twice that size (values above the running threshold are
never stored; a full buffer is cut back to the smallest with ``np.partition``): at MSMT17
scale (about 9.6e8 negative pairs) 77 MB of float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

FPR_TARGETS: tuple[float, ...] = (1e-4, 1e-3, 1e-2)


def metric_name(fpr: float) -> str:
    """The flat metric key of ``TPR@FPR=fpr`` (``tpr_at_fpr_1e-4``): letters, digits, ``_``,
    ``-`` and ``.`` only, so that TensorBoard and MLflow take it as it is."""
    mantissa, exponent = f"{fpr:.0e}".split("e")
    return f"tpr_at_fpr_{mantissa}e{int(exponent)}"


def label(fpr: float) -> str:
    """The printed label of ``TPR@FPR=fpr`` (``TPR@FPR=1e-4``)."""
    mantissa, exponent = f"{fpr:.0e}".split("e")
    return f"TPR@FPR={mantissa}e{int(exponent)}"


@numba.njit(cache=True, nogil=True)
def _collect_negatives(distmat, q_pids, g_pids, keep, buf, state):
    """Append each row's negative distances below the running threshold to ``buf``;
    ``state`` = [count, threshold] (threshold +inf until the buffer first fills). A full
    buffer keeps its ``keep`` smallest values and the threshold becomes the largest kept.
    Rows are screened 16 items at a time (a vectorised count): most blocks hold no
    value below the threshold and cost one comparison per item."""
    count = int(state[0])
    tau = state[1]
    cap = buf.shape[0]
    num_g = distmat.shape[1]
    block_end = num_g - num_g % 16
    for qi in range(distmat.shape[0]):
        row = distmat[qi]
        q_pid = q_pids[qi]
        j = 0
        while j < num_g:
            stop = j + 16 if j < block_end else num_g
            if j < block_end:
                hits = 0
                for t in range(j, stop):
                    hits += row[t] <= tau
                if hits == 0:
                    j = stop
                    continue
            for t in range(j, stop):
                v = row[t]
                if not v <= tau:  # also NaN: the rank kernel reports it
                    continue
                gp = g_pids[t]
                if gp == q_pid or gp == -1:
                    continue
                buf[count] = v
                count += 1
                if count == cap:
                    part = np.partition(buf, keep - 1)
                    buf[:keep] = part[:keep]
                    tau = buf[keep - 1]
                    count = keep
            j = stop
    state[0] = count
    state[1] = tau


def negative_pairs(g_pids: np.ndarray, q_pids: np.ndarray) -> int:
    """Number of negative pairs: per query, the gallery items of another identity that
    are not junk (removing same-camera items touches same-identity items only)."""
    valid = g_pids[g_pids != -1]
    ids, counts = np.unique(valid, return_counts=True)
    if ids.size == 0:
        return 0
    pos = np.minimum(np.searchsorted(ids, q_pids), ids.size - 1)
    same = np.where(ids[pos] == q_pids, counts[pos], 0)
    return int(np.sum(valid.size - same))


class VerificationPass:
    """Accumulates what TPR@FPR needs, chunk by chunk of query rows.

    ``num_negatives`` is known from the labels before the pass (:func:`negative_pairs`);
    call :meth:`add` with each distance chunk and its positives' distances, then
    :meth:`result`.
    """

    def __init__(self, num_negatives: int, fprs: Sequence[float] = FPR_TARGETS):
        self.fprs = tuple(float(f) for f in fprs)
        self.num_negatives = int(num_negatives)
        self.keep = max(1, min(self.num_negatives,
                               int(np.floor(max(self.fprs) * self.num_negatives)) + 1))
        self.buffer: np.ndarray | None = None  # the first chunk's dtype, float32 or 64
        self.state = np.array([0.0, np.inf])
        self.positives: list[np.ndarray] = []

    @staticmethod
    def buffer_bytes(num_negatives: int, fprs: Sequence[float] = FPR_TARGETS,
                     itemsize: int = 4) -> int:
        """The negatives' buffer in bytes (for the memory budget)."""
        keep = int(np.floor(max(fprs) * num_negatives)) + 1
        return (2 * min(keep, num_negatives) + 1024) * itemsize

    def add(self, distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
            positive_distances: np.ndarray) -> None:
        if self.buffer is None:
            self.buffer = np.empty(2 * self.keep + 1024, distmat.dtype)
        if distmat.dtype != self.buffer.dtype:
            distmat = distmat.astype(self.buffer.dtype)
        _collect_negatives(np.ascontiguousarray(distmat), q_pids, g_pids, self.keep,
                           self.buffer, self.state)
        self.positives.append(np.asarray(positive_distances, np.float64))

    def candidates(self) -> np.ndarray:
        """The negatives that can set a threshold: at most ``keep`` values, unsorted,
        holding the ``keep`` smallest negative distances seen (for a sharded gallery each
        shard's candidates are gathered and :func:`tpr_at_fpr` reads the union)."""
        count = int(self.state[0])
        if self.buffer is None:
            return np.zeros(0)
        if count <= self.keep:
            return self.buffer[:count]
        return np.partition(self.buffer[:count], self.keep - 1)[:self.keep]

    def result(self) -> dict[float, float]:
        """``{fpr: tpr}``; NaN when there is no positive or no negative pair."""
        positives = np.concatenate(self.positives) if self.positives else np.zeros(0)
        return tpr_at_fpr(positives, self.candidates(), self.num_negatives, self.fprs)


def tpr_at_fpr(positives: np.ndarray, candidates: np.ndarray, num_negatives: int,
               fprs: Sequence[float] = FPR_TARGETS) -> dict[float, float]:
    """TPR at each FPR from all positive distances and a set of negative distances that
    holds the ``floor(max(fprs) * num_negatives) + 1`` smallest ones."""
    positives = np.sort(np.asarray(positives, np.float64))
    # the (m + 1)-th smallest negative for each target, by selection (no full sort)
    wanted = {float(f): int(np.floor(f * num_negatives)) for f in fprs}
    inside = sorted({m for m in wanted.values() if m < candidates.size})
    negatives = np.partition(candidates, inside) if inside else candidates
    out: dict[float, float] = {}
    for fpr, m in wanted.items():
        if positives.size == 0 or num_negatives == 0:
            out[fpr] = float("nan")
        elif m >= num_negatives:
            out[fpr] = 1.0
        else:
            threshold = float(negatives[m])
            out[fpr] = float(np.searchsorted(positives, threshold, side="left")
                             / positives.size)
    return out


def reference_tpr_at_fpr(distmat: np.ndarray, q_pids, g_pids, q_camids=None, g_camids=None,
                         query_gallery_index=None,
                         fprs: Sequence[float] = FPR_TARGETS) -> dict[float, float]:
    """Plain NumPy TPR@FPR over the full matrix (tests and small problems): every pair
    listed, sorted, thresholds read off."""
    distmat = np.asarray(distmat, np.float64)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    same = q_pids[:, None] == g_pids[None, :]
    kept = np.broadcast_to(g_pids[None, :] != -1, distmat.shape).copy()
    if q_camids is not None and g_camids is not None:
        kept &= ~(same & (np.asarray(q_camids)[:, None] == np.asarray(g_camids)[None, :]))
    elif query_gallery_index is not None:
        for q, g in enumerate(query_gallery_index):
            if g >= 0:
                kept[q, g] = False
    pos = np.sort(distmat[kept & same])
    neg = np.sort(distmat[kept & ~same])
    out = {}
    for fpr in fprs:
        if pos.size == 0 or neg.size == 0:
            out[float(fpr)] = float("nan")
            continue
        allowed = int(np.floor(fpr * neg.size))  # negatives that may be accepted
        if allowed >= neg.size:
            out[float(fpr)] = 1.0
            continue
        out[float(fpr)] = float(np.mean(pos < neg[allowed]))
    return out

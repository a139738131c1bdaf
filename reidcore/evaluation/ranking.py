"""Ranking metrics (CMC, mAP, mINP) for re-identification, with numba kernels.

Semantics (the community protocol, made explicit)
-------------------------------------------------
For every query the gallery is ranked by ascending distance. **Ties in distance are broken
by gallery order**: of two gallery items at the same distance, the one with the smaller
gallery index ranks first (exactly what a stable sort of the row gives).

Protocols (``protocol=``):

``"market"`` (Market-1501, DukeMTMC-reID, MSMT17, ...)
    For each query, gallery items with the same pid *and* the same camera are removed;
    junk items (pid ``-1``) are removed; distractors (pid ``0``) stay, as negatives.
``"single-gallery-shot"`` (classic CUHK03)
    As ``"market"`` for removal, mAP and mINP; the CMC is averaged over ``sgs_repeats``
    random draws of one gallery item per identity (among the items left for that
    query). The draws come from a counter-based generator seeded by ``seed``: the same
    seed gives the same result on any number of threads and any query chunking.
``"no-camera"`` (datasets without camera ids)
    Only the query image itself is removed, when it is also in the gallery; its gallery
    index is given per query by ``query_gallery_index`` (``-1``: not in the gallery;
    ``None``: no query is in the gallery). Junk (pid ``-1``) is removed as above.

A query with no positive left after removal cannot be scored: it is **skipped and
counted** (``num_skipped_queries``, ``skipped`` mask), never silently dropped; the
summary metrics average over the valid queries only. If no query is valid, a
:class:`~reidcore.errors.ReidError` is raised.

Metrics: ``cmc[r]`` is the fraction of valid queries whose first match is at rank
``<= r + 1``; AP is non-interpolated average precision (as torchreid and fast-reid
compute it) or, with ``average_precision="interpolated"``, the trapezoidal AP of the
official Market-1501 MATLAB evaluation; INP is ``num_positives / (rank of the last
positive)`` (Ye et al., 2021). Ranks in per-query arrays are 1-based.

Speed: no row is sorted; everything the metrics need follows from the ranks of the
positives. This module is the public API (validation, chunking, the result); the numba
kernels live in :mod:`reidcore.evaluation.ranking_kernels` and the single-gallery-shot
sampling in :mod:`reidcore.evaluation.ranking_sgs` (compiled on first use, ``cache=True``:
a new process loads them from the cache).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from reidcore.errors import ReidError
from reidcore.evaluation.ranking_kernels import rank_kernel as _rank_kernel
from reidcore.evaluation.ranking_sgs import sgs_kernel as _sgs_kernel

logger = logging.getLogger("reid.evaluation")

PROTOCOLS: tuple[str, ...] = ("market", "single-gallery-shot", "no-camera")


# --------------------------------------------------------------------------- results


@attrs.frozen(eq=False)
class RankResult:
    """Metrics of one ranking evaluation, with per-query arrays.

    Per-query arrays have one entry per query; for skipped queries ``ap``/``inp`` are
    ``nan`` and ``first_match_rank`` is 0. ``first_match_rank`` is 1-based.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_skipped_queries: int
    ap: np.ndarray
    inp: np.ndarray
    first_match_rank: np.ndarray
    num_positives: np.ndarray
    skipped: np.ndarray
    protocol: str = "market"
    average_precision: str = "standard"
    distance: str = ""
    """The distance the ranking used (``euclidean``, ``cosine``...; empty when the caller
    gave a distance matrix), with ``normalisation`` and ``reranked``: every result says
    how it was computed, since a different distance gives a different score."""
    normalisation: str = ""
    reranked: bool = False
    tpr_at_fpr: dict = attrs.field(factory=dict)
    """``{fpr: tpr}`` (:mod:`reidcore.evaluation.verification`); empty when not computed."""
    intervals: dict = attrs.field(factory=dict)
    """``{metric: (low, high)}``: bootstrap confidence intervals over the valid queries
    (:mod:`reidcore.evaluation.bootstrap`) for ``mAP``, ``mINP`` and ``rank<k>``; empty
    when not computed."""
    confidence: float = 0.95
    resamples: int = 0

    @property
    def num_queries(self) -> int:
        return int(self.ap.shape[0])

    def rank(self, k: int) -> float:
        """CMC at rank ``k`` (1-based), e.g. ``rank(1)`` is rank-1 accuracy."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"rank {k} outside 1..{len(self.cmc)} (raise max_rank)")
        return float(self.cmc[k - 1])

    def summary(self, ranks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
        """Flat scalar metrics: ``mAP``, ``mINP``, ``rank1``..., and the query counts."""
        out: dict[str, float] = {"mAP": float(self.mAP), "mINP": float(self.mINP)}
        for k in ranks:
            if k <= len(self.cmc):
                out[f"rank{k}"] = float(self.cmc[k - 1])
        out["num_valid_queries"] = float(self.num_valid_queries)
        out["num_skipped_queries"] = float(self.num_skipped_queries)
        from reidcore.evaluation.verification import metric_name

        for fpr, tpr in self.tpr_at_fpr.items():
            out[metric_name(fpr)] = float(tpr)
        for name, (low, high) in self.intervals.items():
            out[f"{name}_ci_low"] = float(low)
            out[f"{name}_ci_high"] = float(high)
        return out

    def to_dict(self, *, per_query: bool = False) -> dict:
        data: dict = {
            "protocol": self.protocol,
            "distance": self.distance or "(given distance matrix)",
            "normalisation": self.normalisation or "none",
            "reranked": bool(self.reranked),
            "average_precision": self.average_precision,
            "mAP": float(self.mAP),
            "mINP": float(self.mINP),
            "cmc": [float(x) for x in self.cmc],
            "num_valid_queries": int(self.num_valid_queries),
            "num_skipped_queries": int(self.num_skipped_queries),
        }
        if self.tpr_at_fpr:
            from reidcore.evaluation.verification import label

            data["tpr_at_fpr"] = {label(f): float(t) for f, t in self.tpr_at_fpr.items()}
        if self.intervals:
            data["confidence_intervals"] = {
                "level": self.confidence, "resamples": self.resamples,
                "method": "percentile bootstrap over valid queries",
                **{name: [float(lo), float(hi)] for name, (lo, hi) in self.intervals.items()}}
        if per_query:
            data["per_query"] = self.per_query_rows()
        return data

    def per_query_rows(self, query_paths: Sequence[str] | None = None) -> list[dict]:
        rows = []
        for i in range(self.num_queries):
            skipped = bool(self.skipped[i])
            row: dict[str, Any] = {
                "query": i,
                "valid": not skipped,
                "ap": None if skipped else float(self.ap[i]),
                "first_match_rank": None if skipped else int(self.first_match_rank[i]),
                "inp": None if skipped else float(self.inp[i]),
                "num_positives": int(self.num_positives[i]),
            }
            if query_paths is not None:
                row["path"] = str(query_paths[i])
            rows.append(row)
        return rows

    def write_per_query(self, path: str | Path,
                        query_paths: Sequence[str] | None = None) -> Path:
        """Write per-query results as ``.npz`` (compact: ``ap``, ``inp`` float32,
        ``first_match_rank``, ``num_positives`` int32, ``valid``, and ``paths`` when known;
        NaN / 0 for skipped queries), ``.csv`` or ``.json`` (chosen by the suffix).
        Written atomically."""
        from reidcore.fileio import atomic_open

        path = Path(path)
        if path.suffix.lower() == ".npz":
            arrays: dict[str, Any] = {
                "ap": self.ap.astype(np.float32), "inp": self.inp.astype(np.float32),
                "first_match_rank": self.first_match_rank.astype(np.int32),
                "num_positives": self.num_positives.astype(np.int32),
                "valid": ~self.skipped}
            if query_paths is not None:
                arrays["paths"] = np.array([str(p) for p in query_paths])
            with atomic_open(path, "wb") as handle:
                np.savez_compressed(handle, **arrays)
            return path
        rows = self.per_query_rows(query_paths)
        if path.suffix.lower() == ".json":
            data = self.to_dict()
            data["per_query"] = rows
            path.write_text(json.dumps(data, indent=2) + "\n")
        elif path.suffix.lower() == ".csv":
            fields = ["query", "valid", "ap", "first_match_rank", "inp", "num_positives"]
            if query_paths is not None:
                fields.append("path")
            with path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                for row in rows:
                    writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        else:
            raise ReidError(f"per-query results go to a .npz, .csv or .json file, not {path}")
        return path


# --------------------------------------------------------------------------- driver


def _as_1d_int(name: str, values, length: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] != length:
        raise ReidError(f"{name} must be a 1-d array of length {length}, got shape "
                        f"{array.shape}")
    if array.dtype.kind not in "iub":
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(
                array == np.round(array)):
            pass
        else:
            raise ReidError(f"{name} must hold integers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.int64)


@attrs.define
class GalleryIndex:
    """The gallery grouped by pid (junk left out), reused across query chunks."""

    pids: np.ndarray
    camids: np.ndarray
    order: np.ndarray
    group_pids: np.ndarray
    group_starts: np.ndarray

    @classmethod
    def build(cls, g_pids: np.ndarray, g_camids: np.ndarray) -> GalleryIndex:
        order = np.argsort(g_pids, kind="stable")
        sorted_pids = g_pids[order]
        keep = sorted_pids != -1
        order = np.ascontiguousarray(order[keep])
        sorted_pids = sorted_pids[keep]
        if sorted_pids.size:
            change = np.flatnonzero(np.diff(sorted_pids)) + 1
            starts = np.concatenate([[0], change, [sorted_pids.size]])
            group_pids = sorted_pids[starts[:-1]]
        else:
            starts = np.zeros(1, np.int64)
            group_pids = np.zeros(0, np.int64)
        return cls(g_pids, g_camids, order, np.ascontiguousarray(group_pids, np.int64),
                   np.ascontiguousarray(starts, np.int64))

    def query_groups(self, q_pids: np.ndarray) -> np.ndarray:
        """Group number of each query pid, -1 when the pid is absent (or junk)."""
        if self.group_pids.size == 0:
            return np.full(q_pids.shape, -1, np.int64)
        pos = np.searchsorted(self.group_pids, q_pids)
        pos_clipped = np.minimum(pos, self.group_pids.size - 1)
        found = (pos < self.group_pids.size) & (self.group_pids[pos_clipped] == q_pids)
        found &= q_pids != -1
        return np.where(found, pos_clipped, -1).astype(np.int64)


@attrs.define
class _Partial:
    """Per-query arrays of a chunk of queries."""

    ap: np.ndarray
    ap_interp: np.ndarray
    first: np.ndarray
    inp: np.ndarray
    npos: np.ndarray
    sgs_hits: np.ndarray | None


def _check_protocol(protocol: str, have_cams: bool) -> None:
    if protocol not in PROTOCOLS:
        raise ReidError(f"unknown evaluation protocol '{protocol}'; choose one of "
                        f"{', '.join(PROTOCOLS)}")
    if protocol != "no-camera" and not have_cams:
        raise ReidError(f"protocol '{protocol}' needs camera ids for query and gallery; "
                        "use protocol 'no-camera' for a dataset without them")


def rank_chunk(distmat: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray | None,
               gallery: GalleryIndex, *, protocol: str, query_offset: int = 0,
               query_gallery_index: np.ndarray | None = None, max_rank: int = 50,
               sgs_repeats: int = 10, seed: int = 0) -> _Partial:
    """Per-query arrays for one block of query rows (``distmat`` is chunk x gallery)."""
    num_q, num_g = distmat.shape
    if distmat.dtype not in (np.float32, np.float64):
        distmat = distmat.astype(np.float32)
    distmat = np.ascontiguousarray(distmat)
    use_cams = protocol != "no-camera"
    q_cams = (np.ascontiguousarray(q_camids, np.int64) if use_cams
              else np.zeros(num_q, np.int64))
    g_cams = gallery.camids if use_cams else np.zeros(num_g, np.int64)
    if query_gallery_index is None or use_cams:
        self_index = np.full(num_q, -1, np.int64)
    else:
        self_index = np.ascontiguousarray(query_gallery_index, np.int64)
    groups = gallery.query_groups(q_pids)
    grp_start = np.where(groups >= 0, gallery.group_starts[np.maximum(groups, 0)], 0)
    grp_end = np.where(groups >= 0, gallery.group_starts[np.maximum(groups, 0) + 1], 0)
    ap = np.empty(num_q, np.float64)
    ap_interp = np.empty(num_q, np.float64)
    first = np.empty(num_q, np.int64)
    inp = np.empty(num_q, np.float64)
    npos = np.empty(num_q, np.int64)
    nan_flag = np.zeros(num_q, np.bool_)
    _rank_kernel(distmat, q_pids, q_cams, gallery.pids, g_cams, use_cams, self_index,
                 gallery.order, np.ascontiguousarray(grp_start, np.int64),
                 np.ascontiguousarray(grp_end, np.int64), ap, ap_interp, first, inp, npos,
                 nan_flag)
    if nan_flag.any():
        raise ReidError("the distance matrix holds NaN values (query rows "
                        f"{(np.flatnonzero(nan_flag)[:5] + query_offset).tolist()}...); "
                        "check the features")
    hits = None
    if protocol == "single-gallery-shot":
        hits = np.zeros((num_q, max_rank), np.float64)
        q_index = np.arange(query_offset, query_offset + num_q, dtype=np.int64)
        _sgs_kernel(distmat, q_index, q_cams, g_cams, gallery.order, gallery.group_starts,
                    groups, int(sgs_repeats), int(seed), int(max_rank), hits)
    return _Partial(ap, ap_interp, first, inp, npos, hits)


def combine(parts: Sequence[_Partial], *, max_rank: int, protocol: str,
            average_precision: str = "standard") -> RankResult:
    """Summarise per-query arrays of one or several query chunks."""
    if average_precision not in ("standard", "interpolated"):
        raise ReidError(f"average_precision must be 'standard' or 'interpolated', "
                        f"got '{average_precision}'")
    ap = np.concatenate([p.ap_interp if average_precision == "interpolated" else p.ap
                         for p in parts])
    first = np.concatenate([p.first for p in parts])
    inp = np.concatenate([p.inp for p in parts])
    npos = np.concatenate([p.npos for p in parts])
    valid = npos > 0
    num_valid = int(valid.sum())
    num_skipped = int(valid.size - num_valid)
    if num_valid == 0:
        raise ReidError(f"no query has a valid match in the gallery (all {valid.size} "
                        f"queries skipped under protocol '{protocol}'); check the pids "
                        "and camera ids")
    if num_skipped:
        logger.warning("%d of %d queries have no valid match in the gallery and are "
                       "skipped", num_skipped, valid.size)
    if protocol == "single-gallery-shot":
        hits = np.concatenate([p.sgs_hits for p in parts])
        cmc = hits[valid].sum(axis=0) / num_valid
    else:
        counts = np.bincount(np.minimum(first[valid], max_rank + 1) - 1,
                             minlength=max_rank + 1)[:max_rank]
        cmc = np.cumsum(counts) / num_valid
    ap = np.where(valid, ap, np.nan)
    inp = np.where(valid, inp, np.nan)
    return RankResult(
        cmc=cmc.astype(np.float64), mAP=float(np.mean(ap[valid])),
        mINP=float(np.mean(inp[valid])), num_valid_queries=num_valid,
        num_skipped_queries=num_skipped, ap=ap, inp=inp,
        first_match_rank=np.where(valid, first, 0), num_positives=npos,
        skipped=~valid, protocol=protocol, average_precision=average_precision)


def prepare_labels(q_pids, g_pids, q_camids, g_camids, num_q: int, num_g: int,
                   protocol: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                           np.ndarray]:
    """Validate and convert labels; returns ``(q_pids, g_pids, q_camids, g_camids)``."""
    q_pids = _as_1d_int("q_pids", q_pids, num_q)
    g_pids = _as_1d_int("g_pids", g_pids, num_g)
    have_cams = q_camids is not None and g_camids is not None
    _check_protocol(protocol, have_cams)
    if have_cams:
        q_camids = _as_1d_int("q_camids", q_camids, num_q)
        g_camids = _as_1d_int("g_camids", g_camids, num_g)
    else:
        q_camids = None
        g_camids = np.zeros(num_g, np.int64)
    return q_pids, g_pids, q_camids, g_camids


def rank_metrics(distmat, q_pids, g_pids, q_camids=None, g_camids=None, *,
                 max_rank: int = 50, protocol: str = "market",
                 average_precision: str = "standard",
                 query_gallery_index=None, sgs_repeats: int = 10,
                 seed: int = 0) -> RankResult:
    """CMC, mAP and mINP of a query x gallery distance matrix (smaller is closer).

    ``protocol`` is ``"market"``, ``"single-gallery-shot"`` (CUHK03 classic, seeded by
    ``seed``, ``sgs_repeats`` draws) or ``"no-camera"`` (camera ids may then be
    ``None``; ``query_gallery_index[q]`` is the gallery index of query ``q``'s own
    image, or -1). See the module docstring for the exact semantics.
    """
    distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise ReidError(f"distmat must be 2-d (queries x gallery), got shape {distmat.shape}")
    if not 1 <= int(max_rank):
        raise ReidError(f"max_rank must be >= 1, got {max_rank}")
    if sgs_repeats < 1:
        raise ReidError(f"sgs_repeats must be >= 1, got {sgs_repeats}")
    num_q, num_g = distmat.shape
    q_pids, g_pids, q_camids, g_camids = prepare_labels(
        q_pids, g_pids, q_camids, g_camids, num_q, num_g, protocol)
    if query_gallery_index is not None:
        query_gallery_index = _as_1d_int("query_gallery_index", query_gallery_index, num_q)
    gallery = GalleryIndex.build(g_pids, g_camids)
    part = rank_chunk(distmat, q_pids, q_camids, gallery, protocol=protocol,
                      query_gallery_index=query_gallery_index, max_rank=int(max_rank),
                      sgs_repeats=sgs_repeats, seed=seed)
    return combine([part], max_rank=int(max_rank), protocol=protocol,
                   average_precision=average_precision)


def warm_up() -> None:
    """Compile (or load from the cache) the kernels for float32 and float64 inputs."""
    for dtype in (np.float32, np.float64):
        d = np.array([[0.1, 0.2, 0.3]], dtype=dtype)
        pids = np.array([1]), np.array([1, 2, 1])
        cams = np.array([0]), np.array([1, 1, 1])
        rank_metrics(d, *pids, *cams, max_rank=1, protocol="single-gallery-shot")
        rank_metrics(d, *pids, *cams, max_rank=1)


__all__ = ["GalleryIndex", "PROTOCOLS", "RankResult", "rank_metrics", "warm_up"]

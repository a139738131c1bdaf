"""Pairwise distances in torch, in chunks, on the features' device (the GPU when there).

Metrics: ``"euclidean"`` (``||q - g||``), ``"sqeuclidean"`` (``||q - g||^2``),
``"cosine"`` (``1 - cos(q, g)``) and ``"l1"`` (``sum |q - g|``, cityblock: ARN's evaluation;
note that ARN's official code maps its ``L1`` to scipy's ``'hamming'``, the fraction of
unequal coordinates, which is not L1). Smaller is closer for all four. Results come back as
float32 NumPy arrays on the CPU, one chunk of query rows at a time, so that nothing
larger than ``chunk_rows x num_gallery`` exists at once beyond the features themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from reidcore.errors import ReidError

if TYPE_CHECKING:
    import torch

METRICS: tuple[str, ...] = ("euclidean", "sqeuclidean", "cosine", "l1")

DEFAULT_CHUNK_BYTES = 256 * 2**20
"""Size of one chunk of the distance matrix (float32) when no row count is given."""


def as_tensor(features) -> torch.Tensor:
    """Features as a 2-d floating tensor (NumPy arrays are wrapped without a copy)."""
    import torch

    tensor = torch.as_tensor(features)
    if tensor.ndim != 2:
        raise ReidError(f"features must be 2-d (N x D), got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        tensor = tensor.float()
    return tensor


def check_finite(features, what: str) -> None:
    """A :class:`ReidError` naming ``what`` (``the query features``, a file) and the rows
    that hold NaN or inf: such a row makes every distance of it meaningless, and the
    ranking or re-ranking would otherwise fail later on an internal matrix."""
    if not isinstance(features, np.ndarray):
        features = features.detach().cpu().numpy()
    if features.dtype.kind != "f" or features.ndim != 2:
        return
    bad = np.concatenate([~np.isfinite(features[start:start + 4096]).all(axis=1)
                          for start in range(0, features.shape[0], 4096)] or
                         [np.zeros(0, bool)])
    if bad.any():
        rows = np.flatnonzero(bad)
        shown = ", ".join(str(int(r)) for r in rows[:10])
        raise ReidError(f"{what} hold non-finite values (NaN or inf) in {rows.size} of "
                        f"{features.shape[0]} rows (0-based): {shown}"
                        f"{', ...' if rows.size > 10 else ''}; re-extract them or drop "
                        "those rows (the model may have diverged)")


def l2_normalise(features: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    import torch

    return torch.nn.functional.normalize(features, p=2.0, dim=1, eps=eps)


def as_array(features) -> np.ndarray:
    """Features as a 2-d floating NumPy array (the NumPy backend; no copy when already)."""
    array = np.asarray(features)
    if array.ndim != 2:
        raise ReidError(f"features must be 2-d (N x D), got shape {array.shape}")
    if array.dtype.kind != "f" or array.dtype == np.float16:
        array = array.astype(np.float32)
    return array


def l2_normalise_array(features: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """``l2_normalise`` for NumPy arrays (the same formula: x / max(||x||, eps))."""
    norms = np.sqrt(np.einsum("ij,ij->i", features, features, dtype=features.dtype))
    return features / np.maximum(norms, eps)[:, None]


class PreparedArray:
    """:class:`Prepared` for NumPy arrays (``euclidean``, ``sqeuclidean``, ``cosine``):
    the same formulas computed by NumPy's BLAS, so that ``reid eval`` of saved features
    needs no torch (its import is most of a new process's start). Equal to the torch path
    within float32 rounding."""

    def __init__(self, gallery: np.ndarray, metric: str, dtype: Any):
        self.metric = metric
        gallery = np.ascontiguousarray(gallery, dtype=dtype)
        self.g_sq: np.ndarray | None = None
        if metric == "cosine":
            gallery = l2_normalise_array(gallery)
        else:
            self.g_sq = np.einsum("ij,ij->i", gallery, gallery, dtype=dtype)
        self.gallery_t = gallery.T

    def block(self, query: np.ndarray) -> np.ndarray:
        query = np.asarray(query, dtype=self.gallery_t.dtype)
        if self.metric == "cosine":
            out = l2_normalise_array(query) @ self.gallery_t
            np.subtract(1.0, out, out=out)
            return out
        # (-2 q) . g is -2 (q . g) bit for bit (a power of two): one pass fewer over the
        # rows x gallery block than scaling the product
        out = (query * -2.0).astype(query.dtype, copy=False) @ self.gallery_t
        out += np.einsum("ij,ij->i", query, query, dtype=query.dtype)[:, None]
        assert self.g_sq is not None
        out += self.g_sq[None, :]
        np.maximum(out, 0.0, out=out)
        if self.metric == "euclidean":
            np.sqrt(out, out=out)
        return out


def numpy_backend_fits(query, gallery, metric: str) -> bool:
    """Whether the NumPy backend computes these distances: NumPy inputs, not ``l1``."""
    return (isinstance(query, np.ndarray) and isinstance(gallery, np.ndarray)
            and metric != "l1")


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ReidError(f"unknown distance metric '{metric}'; choose one of "
                        f"{', '.join(METRICS)}")


def chunk_rows(num_gallery: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    return max(1, chunk_bytes // max(1, 4 * num_gallery))


class Prepared:
    """Gallery-side quantities computed once and reused for every query chunk."""

    def __init__(self, gallery: torch.Tensor, metric: str, dtype: torch.dtype):
        import torch

        self.metric = metric
        gallery = gallery.to(dtype)
        self.g_sq: torch.Tensor | None = None
        if metric == "cosine":
            gallery = l2_normalise(gallery)
        elif metric != "l1":
            # a reduction without a gallery-sized temporary
            self.g_sq = torch.linalg.vector_norm(gallery, dim=1).square_()
        self.gallery = gallery
        """The gallery as the distances see it (l2-normalised for ``cosine``)."""
        self.gallery_t = gallery.t()

    def block(self, query: torch.Tensor, start: int = 0,
              stop: int | None = None) -> torch.Tensor:
        """Distances of ``query`` rows to gallery items ``start:stop`` (default: all)."""
        import torch

        query = query.to(self.gallery_t.dtype)
        if self.metric == "l1":
            return torch.cdist(query, self.gallery[start:stop], p=1.0)
        gallery_t = self.gallery_t[:, start:stop]
        if self.metric == "cosine":
            return torch.addmm(torch.ones((), dtype=query.dtype, device=query.device),
                               l2_normalise(query), gallery_t, beta=1.0, alpha=-1.0)
        q_sq = query.pow(2).sum(dim=1, keepdim=True)
        out = torch.addmm(q_sq, query, gallery_t, beta=1.0, alpha=-2.0)
        assert self.g_sq is not None  # set for the squared-distance metrics
        out.add_(self.g_sq[start:stop].unsqueeze(0)).clamp_(min=0.0)
        if self.metric == "euclidean":
            out.sqrt_()
        return out


def _compute_dtype(query: torch.Tensor, gallery: torch.Tensor) -> torch.dtype:
    import torch

    if query.dtype == torch.float64 or gallery.dtype == torch.float64:
        return torch.float64
    return torch.float32


def iter_distance_chunks(query, gallery, metric: str = "euclidean", *,
                         rows: int | None = None,
                         device: str | torch.device | None = None,
                         backend: str = "torch"
                         ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_query_row, distances)`` for consecutive blocks of query rows.

    ``distances`` is a float32 NumPy array of ``rows x num_gallery``; the computation runs
    on ``device`` (default: the gallery's device). ``backend="numpy"`` computes with NumPy
    (no torch import) when :func:`numpy_backend_fits`, else falls back to torch.
    """
    check_metric(metric)
    if backend == "numpy" and numpy_backend_fits(query, gallery, metric):
        yield from _iter_numpy_chunks(as_array(query), as_array(gallery), metric, rows)
        return
    import torch

    query = as_tensor(query)
    gallery = as_tensor(gallery)
    if query.shape[1] != gallery.shape[1]:
        raise ReidError(f"query and gallery features differ in dimension: "
                        f"{query.shape[1]} vs {gallery.shape[1]}")
    device = torch.device(device) if device is not None else gallery.device
    dtype = _compute_dtype(query, gallery)
    rows = rows or chunk_rows(gallery.shape[0])
    with torch.no_grad():
        prepared = Prepared(gallery.to(device), metric, dtype)
        for start in range(0, query.shape[0], rows):
            block = prepared.block(query[start:start + rows].to(device))
            yield start, block.to(dtype=torch.float32, device="cpu").numpy()


def _iter_numpy_chunks(query: np.ndarray, gallery: np.ndarray, metric: str,
                       rows: int | None) -> Iterator[tuple[int, np.ndarray]]:
    if query.shape[1] != gallery.shape[1]:
        raise ReidError(f"query and gallery features differ in dimension: "
                        f"{query.shape[1]} vs {gallery.shape[1]}")
    dtype = np.float64 if np.float64 in (query.dtype, gallery.dtype) else np.float32
    rows = rows or chunk_rows(gallery.shape[0])
    prepared = PreparedArray(gallery, metric, dtype)
    for start in range(0, query.shape[0], rows):
        yield start, prepared.block(query[start:start + rows]).astype(np.float32, copy=False)


def pairwise_distance(query, gallery, metric: str = "euclidean", *,
                      rows: int | None = None,
                      device: str | torch.device | None = None,
                      backend: str = "torch") -> np.ndarray:
    """The full ``num_query x num_gallery`` float32 distance matrix (computed in chunks)."""
    if not (backend == "numpy" and numpy_backend_fits(query, gallery, metric)):
        query = as_tensor(query)
        gallery = as_tensor(gallery)
    out = np.empty((query.shape[0], gallery.shape[0]), np.float32)
    for start, block in iter_distance_chunks(query, gallery, metric, rows=rows,
                                             device=device, backend=backend):
        out[start:start + block.shape[0]] = block
    return out

"""Image and texture fidelity against ground truth: masked L1 and SSIM, and the rank of an
identity for a query (the proving ground's metrics; the truth comes from
:mod:`reidcore.data.synth_truth`, the wiring into a run from :mod:`reidcore.engine.mechanism`).

Images are float arrays in [0, 1], H x W x 3. SSIM is Wang et al. (2004): an 11-tap Gaussian
window (sigma 1.5), C1 = (0.01)^2, C2 = (0.03)^2 for a data range of 1, computed per channel
(edges reflected) and averaged over the channels; a mask averages the SSIM map (and the
absolute error) over the pixels it selects only, so a background the method need not
reproduce does not count.
"""

from __future__ import annotations

import numpy as np

C1 = 0.01 ** 2
C2 = 0.03 ** 2


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    window = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    return window / window.sum()


def _filter(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable filtering of H x W x C with reflected edges (same size out)."""
    radius = len(window) // 2
    padded = np.pad(image, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    rows = sum(w * padded[i:i + image.shape[0]] for i, w in enumerate(window))
    return sum(w * rows[:, i:i + image.shape[1]] for i, w in enumerate(window))


def _check(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None) -> None:
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"expected two H x W x C images of one shape, got {a.shape} and "
                         f"{b.shape}")
    if mask is not None and (mask.shape != a.shape[:2] or not mask.any()):
        raise ValueError(f"the mask must be H x W = {a.shape[:2]} and select a pixel")


def masked_l1(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference over the pixels ``mask`` selects (all: None)."""
    _check(a, b, mask)
    error = np.abs(a.astype(np.float64) - b.astype(np.float64)).mean(axis=2)
    return float(error[mask].mean() if mask is not None else error.mean())


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (mean over channels), H x W."""
    _check(a, b, None)
    x, y = a.astype(np.float64), b.astype(np.float64)
    window = _gaussian_window()
    mu_x, mu_y = _filter(x, window), _filter(y, window)
    var_x = _filter(x * x, window) - mu_x ** 2
    var_y = _filter(y * y, window) - mu_y ** 2
    cov = _filter(x * y, window) - mu_x * mu_y
    value = ((2 * mu_x * mu_y + C1) * (2 * cov + C2)
             / ((mu_x ** 2 + mu_y ** 2 + C1) * (var_x + var_y + C2)))
    result: np.ndarray = value.mean(axis=2)
    return result


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """SSIM averaged over the pixels ``mask`` selects (all: None); 1 for equal images."""
    _check(a, b, mask)
    values = ssim_map(a, b)
    return float(values[mask].mean() if mask is not None else values.mean())


def identity_rank(query: np.ndarray, gallery: np.ndarray, gallery_pids: np.ndarray,
                  pid: int) -> int:
    """1-based rank of the first gallery item of identity ``pid`` for ``query`` by cosine
    distance (ties broken by gallery order); ``len(gallery) + 1`` when ``pid`` is absent."""
    q = query.astype(np.float64) / max(float(np.linalg.norm(query)), 1e-12)
    g = gallery.astype(np.float64)
    g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    order = np.argsort(-(g @ q), kind="stable")
    hits = np.flatnonzero(gallery_pids[order] == pid)
    return int(hits[0]) + 1 if len(hits) else len(gallery) + 1



def closest_camera_truth(candidate: np.ndarray, truths: np.ndarray, groups: np.ndarray
                         ) -> tuple[np.ndarray, dict[int, int]]:
    """Each image's truth through the camera an unpaired translator is granted: for each
    group of images (the source camera they were taken by), the truth camera whose renders
    are closest to ``candidate`` on average (L1), since unpaired data does not say which
    target camera goes with which source camera (several groups may pick the same one).

    ``candidate``: B x H x W x 3; ``truths``: C x B x H x W x 3, camera c's render of each
    image; ``groups``: B source-camera labels. Returns the B truths and, per group, the
    chosen position in ``truths`` (ties: the first)."""
    if truths.ndim != candidate.ndim + 1 or truths.shape[1:] != candidate.shape:
        raise ValueError(f"truths {truths.shape} are not C renders of candidate "
                         f"{candidate.shape}")
    if groups.shape != (len(candidate),):
        raise ValueError(f"groups {groups.shape}: one label per image of {candidate.shape}")
    error = np.abs(truths - candidate[None]).reshape(len(truths), len(candidate), -1).mean(2)
    chosen = {int(g): int(np.argmin(error[:, groups == g].mean(axis=1)))
              for g in np.unique(groups)}
    picks = np.array([chosen[int(g)] for g in groups])
    return truths[picks, np.arange(len(candidate))], chosen

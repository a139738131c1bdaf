"""Ranked-results pictures: each sampled query, then its top-k gallery images with green
(same identity) or red (different identity) borders.

The gallery items removed by the protocol (same identity and camera, junk, the query
itself) are left out, as in the evaluation. :func:`save_ranked_results` writes a PNG and
returns the picture as an ``H x W x 3`` uint8 array, which the engine can hand to
TensorBoard (``add_image(..., dataformats="HWC")``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from reidcore.errors import ReidError
from reidcore.records import FeatureSet

GREEN = (0, 170, 0)
RED = (220, 0, 0)
QUERY = (40, 40, 40)


def rank_top_k(dist_rows: np.ndarray, q_pids, g_pids, q_camids=None, g_camids=None, *,
               k: int = 10, protocol: str = "market",
               query_gallery_index=None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k valid gallery indices of each row (stable order) and whether each matches.

    Rows with fewer than ``k`` valid items are padded with index -1.
    """
    dist_rows = np.atleast_2d(np.asarray(dist_rows))
    g_pids = np.asarray(g_pids)
    ranked = np.full((dist_rows.shape[0], k), -1, np.int64)
    correct = np.zeros((dist_rows.shape[0], k), bool)
    for row in range(dist_rows.shape[0]):
        valid = g_pids != -1
        if protocol == "no-camera":
            if query_gallery_index is not None and query_gallery_index[row] >= 0:
                valid[query_gallery_index[row]] = False
        else:
            valid &= ~((g_pids == q_pids[row]) & (np.asarray(g_camids) == q_camids[row]))
        candidates = np.flatnonzero(valid)
        order = candidates[np.argsort(dist_rows[row, candidates], kind="stable")][:k]
        ranked[row, :len(order)] = order
        correct[row, :len(order)] = g_pids[order] == q_pids[row]
    return ranked, correct


def _tile(path: str | None, size: tuple[int, int], border: int,
          colour: tuple[int, int, int]) -> Image.Image:
    width, height = size
    inner = (width - 2 * border, height - 2 * border)
    from reidcore.data.imageio import to_rgb

    picture = Image.new("RGB", inner, (128, 128, 128))  # no path, or an unreadable file
    if path is not None:
        try:
            with Image.open(path) as image:
                picture = to_rgb(image, str(path)).resize(inner)
        except (OSError, ValueError, AttributeError, ReidError):
            pass
    return ImageOps.expand(picture, border=border, fill=colour)


def ranked_results_image(query_paths: Sequence[str | None],
                         gallery_paths: Sequence[str | None],
                         ranked: np.ndarray, correct: np.ndarray, *,
                         size: tuple[int, int] = (64, 128), border: int = 4,
                         gap: int = 12) -> Image.Image:
    """One row per query: the query, a gap, then its ranked gallery images.

    Images that cannot be read are drawn grey, so a picture is always produced.
    """
    num_rows, k = ranked.shape
    width, height = size
    canvas = Image.new("RGB", ((k + 1) * (width + 2) + gap, num_rows * (height + 2)),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for row in range(num_rows):
        y = row * (height + 2)
        canvas.paste(_tile(query_paths[row], size, border, QUERY), (0, y))
        for col in range(k):
            index = ranked[row, col]
            if index < 0:
                continue
            colour = GREEN if correct[row, col] else RED
            x = (col + 1) * (width + 2) + gap
            canvas.paste(_tile(gallery_paths[index], size, border, colour), (x, y))
            draw.text((x + border + 1, y + border), str(col + 1), fill=(255, 255, 0))
    return canvas


def save_ranked_results(path: str | Path, query: FeatureSet, gallery: FeatureSet, *,
                        metric: str = "euclidean", normalisation: str = "none",
                        protocol: str = "auto", topk: int = 10, num_queries: int = 8,
                        seed: int = 0) -> tuple[Path, np.ndarray]:
    """Sample ``num_queries`` queries (seeded), rank the gallery, save the PNG."""
    from reidcore.evaluation.distance import l2_normalise, pairwise_distance
    from reidcore.evaluation.protocol import query_gallery_index_from_paths, resolve_protocol

    have_cams = query.camids is not None and gallery.camids is not None
    protocol = resolve_protocol(protocol, have_cams)
    num_q = len(query.pids)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(num_q, size=min(num_queries, num_q), replace=False))
    q_feats = query.features[chosen]
    g_feats = gallery.features
    if normalisation == "l2":
        q_feats, g_feats = l2_normalise(q_feats), l2_normalise(g_feats)
    rows = pairwise_distance(q_feats, g_feats, metric)
    self_index = None
    if protocol == "no-camera":
        full = query_gallery_index_from_paths(query.paths, gallery.paths)
        self_index = None if full is None else full[chosen]
    ranked, correct = rank_top_k(
        rows, np.asarray(query.pids)[chosen], gallery.pids,
        None if not have_cams else np.asarray(query.camids)[chosen], gallery.camids,
        k=topk, protocol=protocol, query_gallery_index=self_index)
    q_paths = [query.paths[i] if query.paths else None for i in chosen]
    g_paths: list[str | None] = (list(gallery.paths) if gallery.paths
                                 else [None] * len(gallery.pids))
    image = ranked_results_image(q_paths, g_paths, ranked, correct)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path, np.asarray(image)

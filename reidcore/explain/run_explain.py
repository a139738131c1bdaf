"""``reid explain``: for each query image, its top-k gallery matches under the run's
embedding, with activation maps and similarity Grad-CAMs, as one labelled PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reidcore.errors import ReidError
from reidcore.explain.grid import GREEN, GREY, RED, Tile, labelled_grid, overlay
from reidcore.explain.maps import activation_maps, similarity_gradcam

MIN_TILE_HEIGHT = 160


def collect_images(paths: Sequence[Path], what: str) -> list[Path]:
    """Image files, folders expanded (recursively, sorted); a missing path is an error."""
    from reidcore.data.datasets.base import IMAGE_SUFFIXES, find_images

    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += find_images(path, what)
        elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(path)
        elif path.is_file():
            raise ReidError(f"{what} {path}: not an image ({', '.join(IMAGE_SUFFIXES)})")
        else:
            raise ReidError(f"{what} {path}: no such file or folder")
    return found


def _pids(paths: Sequence[Path]) -> list[int | None]:
    from reidcore.data.labels import labels_from_names

    labels, _ = labels_from_names(list(paths))
    return [int(p) for p in labels.pids] if labels is not None else [None] * len(paths)


def _gallery(recipe: Any, registry: Any, folder: Path | None) -> tuple[list[Path], list[Any]]:
    if folder is not None:
        paths = collect_images([folder], "--gallery")
        return paths, _pids(paths)
    if not recipe.data.test:
        raise ReidError("the run's recipe has no [[data.test]] dataset: give --gallery DIR")
    from reidcore.engine.trainer import build_dataset

    records = build_dataset(registry, recipe.data.test[0]).load().gallery
    if not records:
        raise ReidError(f"test set '{recipe.data.test[0].name}' has no gallery: give --gallery")
    return [Path(r.path) for r in records], [r.pid for r in records]


def explain_run(run: str | Path, images: Sequence[Path], out: Path, *, plugins: Any,
                top_k: int = 5, gallery: Path | None = None, layer: str | None = None,
                checkpoint: Path | None = None, overrides: Sequence[str] = ()) -> list[Path]:
    """Write ``out/explain_<NN>_<image name>.png`` per query image; returns the paths."""
    from reidcore.data.loaders import open_image
    from reidcore.engine.extract import FeatureExtractor
    from reidcore.engine.images import save_png

    run_path = Path(run)
    if not (run_path / "recipe.toml").is_file():
        raise ReidError(f"{run_path} is not a run directory (no recipe.toml)"
                        + ("" if run_path.exists() else ": it does not exist"))
    if top_k < 1:
        raise ReidError(f"--top-k must be at least 1, got {top_k}")
    queries = collect_images(images, "--images")
    extractor = FeatureExtractor(run_path, checkpoint=checkpoint, plugins=plugins,
                                 overrides=overrides)
    method, recipe = extractor.method, extractor.recipe
    name = f"method '{recipe.method.name}'"
    gallery_paths, gallery_pids = _gallery(recipe, plugins.registry, gallery)
    unit = torch.nn.functional.normalize
    similarity = unit(extractor(queries)) @ unit(extractor(gallery_paths)).T
    resolved = {p.resolve(): i for i, p in enumerate(gallery_paths)}
    for row, query in enumerate(queries):  # a query is not its own match
        if query.resolve() in resolved:
            similarity[row, resolved[query.resolve()]] = -float("inf")
    k = min(top_k, len(gallery_paths) - 1 if len(gallery_paths) > 1 else 1)
    scores, indices = similarity.topk(k, dim=1)
    query_pids = _pids(queries)

    height, width = recipe.loader.height, recipe.loader.width
    scale = max(1.0, MIN_TILE_HEIGHT / height)
    size = (round(width * scale), round(height * scale))

    def picture(path: Path) -> np.ndarray:
        return np.asarray(open_image(str(path)).resize(size))

    written = []
    for row, query in enumerate(queries):
        matches = [gallery_paths[int(i)] for i in indices[row]]
        paths = [query, *matches]
        batch = extractor._tensor(paths)
        actmaps, module = activation_maps(method, batch, name, layer)
        query_cam, match_cams = similarity_gradcam(method, batch[:1].expand(k, -1, -1, -1),
                                                   batch[1:], name, layer)
        pictures = [picture(p) for p in paths]
        image_tiles = [Tile(pictures[0], f"query\npid {query_pids[row]}", GREY)]
        cam_tiles = [Tile(overlay(pictures[0], query_cam[0]), "query,\ntowards #1")]
        for j in range(len(matches)):
            pid, expected = gallery_pids[int(indices[row, j])], query_pids[row]
            border = None if pid is None or expected is None else (GREEN if pid == expected
                                                                   else RED)
            caption = f"#{j + 1} cos {scores[row, j]:.2f}\npid {pid}"
            image_tiles.append(Tile(pictures[j + 1], caption, border))
            cam_tiles.append(Tile(overlay(pictures[j + 1], match_cams[j]),
                                  f"#{j + 1},\ntowards query"))
        act_tiles = [Tile(overlay(pic, heat), "") for pic, heat in zip(pictures, actmaps,
                                                                         strict=True)]
        grid = labelled_grid([("image", image_tiles), ("activation\n(L2 norm)", act_tiles),
                              ("similarity\nGrad-CAM", cam_tiles)],
                             title=f"{run_path.name}: {query.name}, top-{k} by cosine; "
                                   f"maps of {module}")
        written.append(save_png(grid, out / f"explain_{row:02d}_{query.stem}.png"))
    return written

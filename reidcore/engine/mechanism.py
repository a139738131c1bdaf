"""Does the method's mechanism do what its paper says? Measured against ground truth.

After the final evaluation of a run whose data is the built-in synthetic data, a method
with a capability (:class:`~reidcore.interfaces.SwapsAppearance`,
:class:`~reidcore.interfaces.TranslatesStyle`, :class:`~reidcore.interfaces.EstimatesTexture`)
is measured on a fixed, seeded sample (``train.mechanism_samples``), each metric beside the
trivial baselines a method must beat:

* **swap** (appearance of *a*, structure of *s*) against the true render of *a*'s identity
  in *s*'s scene: L1 and SSIM inside the person mask, beside "copy s" and "copy a"; and
  *swap identity*: the rank of *a*'s identity when the output is the query against the
  test gallery with the run's own embedding (cosine; *a*'s and *s*'s own images left out),
  beside the same for *s* and *a* as queries;
* **translation** of source-style training images against the true render of the same
  scene and person in the other style: L1 and SSIM over the image, beside "no translation";
  once through the other style's camera of the same index (``fidelity``) and once through
  the camera closest to each candidate, chosen per source camera (``fidelity_closest_camera``,
  ``closest_camera``): unpaired data does not say which target camera goes with which source
  camera, so a perfect unpaired translator is only bound to match one of them;
* **texture** estimated from test images against the identity's true UV texture: L1 and
  SSIM, beside the mean texture of the training identities.

Everything is compared at the method's input size, after the test transform, in [0, 1].
The report goes to ``summary.json`` (``mechanism``), TensorBoard (``mechanism/...``) and one
PNG per capability in the run directory (rows: inputs, output, truth; for a translation
also the truth through the method's closest camera).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from reidcore.data.imageio import open_image
from reidcore.data.synth_plan import STYLES
from reidcore.data.synth_truth import SyntheticTruth, TruthImage
from reidcore.data.transforms import NORMALIZATIONS, build_test_transform
from reidcore.evaluation.mechanism import (
    closest_camera_truth,
    identity_rank,
    masked_l1,
    masked_ssim,
)
from reidcore.interfaces import EstimatesTexture, SwapsAppearance, TranslatesStyle
from reidcore.records import ImageRecord
from reidcore.statistics import spread

GRID_COLUMNS = 6


def truth_of(records: Sequence[ImageRecord]) -> SyntheticTruth | None:
    """The ground truth of the data set ``records`` come from, if the built-in generator
    wrote it (its folder's ``manifest.json`` says so); else None."""
    if not records:
        return None
    root = Path(records[0].path).parent.parent
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("generator") != "reidcore.data.synth":
        return None
    return SyntheticTruth.from_dataset(root)


class _Pipeline:
    """The run's test transform, its inverse to [0, 1], and the method's embedding."""

    def __init__(self, method: Any, loader: Any, device: torch.device, flip: bool):
        self.method, self.device, self.flip = method, device, flip
        self.transform = build_test_transform(loader)
        self.size = (loader.height, loader.width)
        mean, std = NORMALIZATIONS.get(loader.normalize, ((0.0,) * 3, (1.0,) * 3))
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def load(self, paths: Sequence[str]) -> torch.Tensor:
        return torch.stack([self.transform(open_image(p)) for p in paths])

    def truth(self, items: Sequence[TruthImage]) -> tuple[torch.Tensor, np.ndarray]:
        """Truth images through the test transform, and their masks at the input size."""
        images = torch.stack([self.transform(Image.fromarray(t.image)) for t in items])
        masks = np.stack([np.asarray(Image.fromarray(t.mask).resize(
            self.size[::-1], Image.Resampling.NEAREST)) for t in items])
        return images, masks

    def unit(self, images: torch.Tensor) -> np.ndarray:
        """Normalised B x 3 x H x W -> B x H x W x 3 in [0, 1]."""
        values = (images.detach().float().cpu() * self.std + self.mean).clamp(0, 1)
        result: np.ndarray = values.permute(0, 2, 3, 1).numpy()
        return result

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> np.ndarray:
        images = images.to(self.device)
        features = self.method.embed(images).float()
        if self.flip:
            features = (features + self.method.embed(images.flip(3)).float()) / 2
        result: np.ndarray = features.cpu().numpy()
        return result

    @torch.no_grad()
    def run(self, call: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
        return call(*(x.to(self.device) for x in inputs)).float().cpu()


def _fidelity(outputs: dict[str, np.ndarray], truth: np.ndarray,
              masks: np.ndarray | None) -> dict[str, dict[str, Any]]:
    """L1 and SSIM of each candidate (the method and its baselines) against the truth."""
    report: dict[str, dict[str, Any]] = {}
    for name, images in outputs.items():
        pick = (lambda i: masks[i]) if masks is not None else (lambda i: None)
        l1 = [masked_l1(images[i], truth[i], pick(i)) for i in range(len(truth))]
        ssim = [masked_ssim(images[i], truth[i], pick(i)) for i in range(len(truth))]
        report[name] = {"l1": spread(l1).to_dict(), "ssim": spread(ssim).to_dict()}
    return report


def _sample(rng: np.random.Generator, count: int, size: int) -> list[int]:
    return [int(i) for i in rng.choice(size, size=min(count, size), replace=False)]


def measure_swap(pipe: _Pipeline, truth: SyntheticTruth, query: Sequence[ImageRecord],
                 gallery: Sequence[ImageRecord], gallery_features: np.ndarray, samples: int,
                 seed: int) -> tuple[dict[str, Any], list[torch.Tensor]]:
    records = [r for r in (*query, *gallery) if r.pid > 0]
    rng = np.random.default_rng([seed, 1])
    firsts = _sample(rng, samples * 4, len(records))
    pairs: list[tuple[ImageRecord, ImageRecord]] = []
    for i in firsts:
        a = records[i]
        others = [r for r in records if r.pid != a.pid]
        if others and len(pairs) < samples:
            pairs.append((a, others[int(rng.integers(len(others)))]))
    a_images = pipe.load([a.path for a, _ in pairs])
    s_images = pipe.load([s.path for _, s in pairs])
    output = pipe.run(pipe.method.swap, a_images, s_images)
    truth_images, masks = pipe.truth([truth.swap(Path(a.path).name, Path(s.path).name)
                                      for a, s in pairs])
    candidates = {"method": pipe.unit(output), "copy_s": pipe.unit(s_images),
                  "copy_a": pipe.unit(a_images)}
    report: dict[str, Any] = _fidelity(candidates, pipe.unit(truth_images), masks)
    pids = np.array([r.pid for r in gallery])
    paths = [r.path for r in gallery]
    queries = {"method": pipe.embed(output), "copy_s": pipe.embed(s_images),
               "copy_a": pipe.embed(a_images)}
    identity: dict[str, Any] = {}
    for name, features in queries.items():
        ranks, top1 = [], []
        for (a, s), feature in zip(pairs, features, strict=True):
            keep = np.array([p not in (a.path, s.path) for p in paths])
            rank = identity_rank(feature, gallery_features[keep], pids[keep], a.pid)
            ranks.append(float(rank))
            top1.append(float(rank == 1))
        identity[name] = {"rank": spread(ranks).to_dict(),
                          "top1": spread(top1).to_dict()}
    report = {"fidelity": report, "identity": identity, "pairs": len(pairs)}
    return report, [a_images, s_images, output, truth_images]


def measure_translation(pipe: _Pipeline, truth: SyntheticTruth,
                        source: Sequence[ImageRecord], samples: int,
                        seed: int) -> tuple[dict[str, Any], list[torch.Tensor]]:
    other = next(style for style in STYLES if style != truth.params.style)
    rng = np.random.default_rng([seed, 2])
    chosen = [source[i] for i in _sample(rng, samples, len(source))]
    names = [Path(r.path).name for r in chosen]
    images = pipe.load([r.path for r in chosen])
    output = pipe.run(pipe.method.translate, images)
    cameras = list(truth.cameras)
    through = [pipe.truth([truth.translate(name, other, camera_index=c) for name in names])[0]
               for c in cameras]  # every camera of the other style, each image
    groups = np.array([truth.job(name).camera for name in names])
    own = torch.stack([through[cameras.index(int(g))][i] for i, g in enumerate(groups)])
    candidates = {"method": pipe.unit(output), "no_translation": pipe.unit(images)}
    report = _fidelity(candidates, pipe.unit(own), None)
    in_unit = np.stack([pipe.unit(t) for t in through])
    closest: dict[str, Any] = {}
    assignment: dict[str, dict[str, int]] = {}
    matched: dict[str, np.ndarray] = {}
    for name, candidate in candidates.items():
        matched[name], picks = closest_camera_truth(candidate, in_unit, groups)
        closest[name] = _fidelity({name: candidate}, matched[name], None)[name]
        assignment[name] = {str(g): cameras[c] for g, c in picks.items()}
    return ({"fidelity": report, "fidelity_closest_camera": closest,
             "closest_camera": assignment, "images": len(chosen),
             "from_style": truth.params.style, "to_style": other},
            [images, output, own, torch.from_numpy(matched["method"]).permute(0, 3, 1, 2)])


def measure_texture(pipe: _Pipeline, truth: SyntheticTruth, test: Sequence[ImageRecord],
                    samples: int, seed: int) -> tuple[dict[str, Any], list[torch.Tensor]]:
    records = [r for r in test if r.pid > 0]
    rng = np.random.default_rng([seed, 3])
    chosen = [records[i] for i in _sample(rng, samples, len(records))]
    images = pipe.load([r.path for r in chosen])
    output = pipe.run(pipe.method.estimate_texture, images).clamp(0, 1)
    height, width = int(output.shape[-2]), int(output.shape[-1])

    def resized(texture: np.ndarray) -> np.ndarray:
        picture = Image.fromarray(np.clip(texture, 0, 255).astype(np.uint8))
        return np.asarray(picture.resize((width, height), Image.Resampling.BILINEAR),
                          dtype=np.float32) / 255

    true = np.stack([resized(truth.texture(truth.identity_of(Path(r.path).name)))
                     for r in chosen])
    mean = resized(truth.mean_texture(range(1, truth.params.ids + 1)))
    estimate = output.permute(0, 2, 3, 1).numpy()
    report = _fidelity({"method": estimate, "mean_texture": np.stack([mean] * len(chosen))},
                       true, None)
    return ({"fidelity": report, "images": len(chosen)},
            [images, output, torch.from_numpy(true).permute(0, 3, 1, 2)])


def mechanism_report(method: Any, recipe: Any, splits: dict[str, list[Any]],
                     test_sets: Sequence[Any], gallery_features: dict[str, np.ndarray],
                     device: torch.device, flip: bool, samples: int,
                     ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(report, grids)`` of every capability ``method`` has whose truth the run's data
    holds (empty when none): see the module docstring. ``gallery_features``: the final
    evaluation's gallery embeddings per test set name, in record order."""
    from reidcore.engine.images import image_grid

    report: dict[str, Any] = {}
    grids: dict[str, np.ndarray] = {}
    if samples <= 0:
        return report, grids
    pipe = _Pipeline(method, recipe.loader, device, flip)
    seed = recipe.seed
    test = test_sets[0] if test_sets else None
    test_truth = truth_of(test.query_records) if test is not None else None
    in_unit = (0.0, 1.0)

    def grid(rows: list[torch.Tensor], normalised: Sequence[bool]) -> np.ndarray:
        shown = [torch.from_numpy(pipe.unit(r)).permute(0, 3, 1, 2) if norm else r
                 for r, norm in zip(rows, normalised, strict=True)]
        return image_grid(shown, value_range=in_unit, limit=GRID_COLUMNS)

    if isinstance(method, SwapsAppearance) and test is not None and test_truth is not None:
        report["swap"], rows = measure_swap(pipe, test_truth, test.query_records,
                                            test.gallery_records, gallery_features[test.name],
                                            samples, seed)
        grids["swap"] = grid(rows, [True] * 4)
    source = splits.get("source", [])
    source_truth = truth_of(source[0].train) if source else None
    if isinstance(method, TranslatesStyle) and source_truth is not None:
        report["translation"], rows = measure_translation(pipe, source_truth, source[0].train,
                                                          samples, seed)
        grids["translation"] = grid(rows, [True, True, True, False])
    if isinstance(method, EstimatesTexture) and test is not None and test_truth is not None:
        report["texture"], rows = measure_texture(
            pipe, test_truth, [*test.query_records, *test.gallery_records], samples, seed)
        grids["texture"] = grid(rows, [True, False, False])
    return report, grids


def scalars(report: dict[str, Any]) -> dict[str, float]:
    """The report's headline numbers for TensorBoard: ``<capability>/<metric>/<candidate>``."""
    values: dict[str, float] = {}
    for capability, part in report.items():
        for key, prefix in (("fidelity", ""), ("fidelity_closest_camera", "closest_camera_")):
            for candidate, metrics in part.get(key, {}).items():
                for metric, stats in metrics.items():
                    values[f"{capability}/{prefix}{metric}/{candidate}"] = stats["mean"]
        for candidate, metrics in part.get("identity", {}).items():
            for metric, stats in metrics.items():
                values[f"{capability}/identity_{metric}/{candidate}"] = stats["mean"]
    return values


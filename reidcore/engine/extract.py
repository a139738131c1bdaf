"""Embedding images with a trained run (or a recipe): ``reid extract`` and a Python API.

::

    from reidcore.engine.extract import FeatureExtractor
    from reidcore.plugins import load_plugins

    extractor = FeatureExtractor("runs/quickstart-20260101-120000", plugins=load_plugins())
    features = extractor(["a.jpg", "b.jpg"])                            # N x D float32 tensor

A run directory (:class:`~reidcore.engine.rundir.RunDirectory`) is read through its
``recipe.toml``, ``manifest.json`` (number of training identities) and ``checkpoints/``
(``best.pt``, else the last epoch checkpoint); a recipe (file or packaged name) gives its untrained
(or locally pretrained) network. Flip averaging follows the recipe's ``[evaluate] flip``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from reidcore.engine.rundir import RunDirectory
from reidcore.errors import ReidError


def _load_recipe(ref: str, plugins: Any, overrides: Sequence[str] = ()
                 ) -> tuple[Any, RunDirectory | None]:
    from reidcore.recipe import find_recipe, read_toml, resolve

    path = Path(ref)
    if path.is_dir():
        run = RunDirectory(path)
        if not run.recipe_file.is_file():
            raise ReidError(f"{path} is not a run directory (no recipe.toml)")
        return resolve(read_toml(run.recipe_file), str(run.recipe_file), plugins.registry,
                       plugins.hook, overrides), run
    found = find_recipe(ref, plugins.recipe_dirs())
    return resolve(read_toml(found), str(found), plugins.registry, plugins.hook, overrides), None


class FeatureExtractor:
    """Embeds images (paths, PIL images, or a B x 3 x H x W tensor already normalised)."""

    def __init__(self, run_or_recipe: str | Path, *, checkpoint: str | Path | None = None,
                 device: str = "cpu", plugins: Any, batch_size: int = 64,
                 overrides: Sequence[str] = ()):
        from reidcore.data.transforms import build_test_transform
        from reidcore.engine import checkpoint as ckpt
        from reidcore.engine.build import expected_num_classes
        from reidcore.engine.context import build_method
        from reidcore.engine.trainer import resolve_device

        self.recipe, run = _load_recipe(str(run_or_recipe), plugins, overrides)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.flip = bool(getattr(self.recipe.evaluate.config, "flip", False))
        self.transform = build_test_transform(self.recipe.loader)
        state_path: Path | None = Path(checkpoint) if checkpoint else None
        num_classes = None
        if run is not None:
            manifest = run.manifest()
            if manifest is not None:
                num_classes = manifest.get("num_classes")
            if state_path is None:
                state_path = run.best_or_latest_checkpoint()
                if state_path is None:
                    raise ReidError(f"run directory {run} has no checkpoint yet")
        state = ckpt.read(state_path) if state_path is not None else None
        if num_classes is None:
            num_classes = expected_num_classes(self.recipe, plugins.registry)[0]
        self.method = build_method(self.recipe, plugins.registry, int(num_classes), meta=False,
                                   device=self.device,
                                   run_dir=run.path if run is not None else None)
        if state is not None:
            ckpt.load_modules(self.method.modules(), state["modules"], str(state_path))
        self.checkpoint = state_path
        for module in self.method.modules().values():
            module.to(self.device).eval()

    def _tensor(self, images: Sequence[Any]) -> torch.Tensor:
        from PIL import Image

        from reidcore.data.loaders import open_image

        tensors = []
        for image in images:
            if isinstance(image, (str, Path)):
                image = open_image(str(image))
            elif not isinstance(image, Image.Image):
                raise TypeError(f"expected a path or a PIL image, got {type(image).__name__}")
            tensors.append(self.transform(image))
        return torch.stack(tensors)

    @torch.no_grad()
    def __call__(self, images: Sequence[Any] | torch.Tensor) -> torch.Tensor:
        from reidcore.progress import progress

        outputs = []
        count = len(images)
        starts = range(0, count, self.batch_size)
        for start in progress(starts, total=len(starts), desc="embedding images",
                              unit="batch"):
            chunk = images[start:start + self.batch_size]
            batch = chunk if isinstance(chunk, torch.Tensor) else self._tensor(chunk)
            batch = batch.to(self.device)
            features = self.method.embed(batch).float()
            if self.flip:
                features = (features + self.method.embed(batch.flip(3)).float()) / 2
            outputs.append(features.cpu())
        return torch.cat(outputs) if outputs else torch.empty(0)


def open_extractor(run_or_recipe: str | Path, *, plugins: Any,
                   checkpoint: str | Path | None = None, device: str = "cpu",
                   batch_size: int = 64, overrides: Sequence[str] = ()) -> Any:
    """A :class:`FeatureExtractor` for a run or recipe, or for a ``.onnx`` file written by
    ``reid export`` an :class:`~reidcore.export.runtime.OnnxFeatureExtractor` (onnxruntime
    embeds; the recipe is the one stored in the file)."""
    if str(run_or_recipe).endswith(".onnx"):
        from reidcore.export.runtime import OnnxFeatureExtractor

        if checkpoint is not None:
            raise ReidError(f"{run_or_recipe}: an exported ONNX file holds its weights; "
                            "--checkpoint does not apply")
        return OnnxFeatureExtractor(run_or_recipe, plugins=plugins, device=device,
                                    batch_size=batch_size, overrides=overrides)
    return FeatureExtractor(run_or_recipe, checkpoint=checkpoint, device=device,
                            plugins=plugins, batch_size=batch_size, overrides=overrides)


def evaluate_run(run_or_recipe: str | Path, *, plugins: Any, overrides: Sequence[str] = (),
                 checkpoint: str | Path | None = None, device: str = "cpu",
                 evaluation: dict[str, Any] | None = None) -> dict[str, float]:
    """Evaluate a trained run (its best checkpoint, else the latest) on every test set of its
    recipe, as the engine does at the end of training; ``overrides`` (``--set``) change the
    recipe first, e.g. ``evaluate.rerank=true`` or another ``data.test``. ``evaluation``,
    when given, receives how each test set was scored (protocol, distance, ...)."""
    from reidcore.data.loaders import build_test_loaders
    from reidcore.engine.evaluate import describe_evaluation, evaluate_test_sets
    from reidcore.engine.trainer import build_dataset, section_names
    from reidcore.registry import Kind

    extractor = open_extractor(run_or_recipe, checkpoint=checkpoint, device=device,
                               plugins=plugins, overrides=overrides)
    recipe = extractor.recipe
    if not recipe.data.test:
        raise ReidError(f"{run_or_recipe}: the recipe has no [[data.test]] dataset to evaluate")
    splits = [build_dataset(plugins.registry, section).load() for section in recipe.data.test]
    test_sets = build_test_loaders(splits, recipe.loader, names=section_names(recipe.data.test))
    evaluator = plugins.registry.get(Kind.EVALUATOR, recipe.evaluate.name).create(
        recipe.evaluate.config)
    metrics, _ = evaluate_test_sets(extractor.method, evaluator, test_sets, extractor.device,
                                    extractor.flip)
    if evaluation is not None:
        evaluation.update(describe_evaluation(evaluator, test_sets))
    return metrics

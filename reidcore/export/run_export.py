"""``reid export``: a run's inference embedding to an ONNX file, written only after
onnxruntime's embeddings of the run's own test images match PyTorch's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from reidcore.errors import ReidError
from reidcore.export.embedding import evaluation_options
from reidcore.export.onnx_export import OPSET, export_method
from reidcore.export.parity import TOLERANCE, Parity, compare, images_from_test_set
from reidcore.export.runtime import OnnxEmbedding, create_session


@attrs.frozen
class ExportResult:
    path: Path
    opset: int
    flip: bool
    normalise: bool
    parity: Parity
    checkpoint: Path | None


def export_onnx(run: str | Path, out: str | Path, *, plugins: Any,
                flip: bool | None = None, normalise: bool | None = None,
                checkpoint: str | Path | None = None, overrides: Sequence[str] = (),
                opset: int = OPSET, parity_images: int = 32,
                images: torch.Tensor | None = None,
                tolerance: float = TOLERANCE) -> ExportResult:
    """Export ``run`` (a run directory; its best, else latest, checkpoint) to ``out``.

    ``flip`` / ``normalise`` default to what the run's evaluation does (``[evaluate] flip``,
    ``normalisation = "l2"``). The parity check embeds ``images`` (normalised B x 3 x H x W)
    or ``parity_images`` images of the run's first test set with both; a difference above
    ``tolerance`` is an error and nothing is written."""
    from reidcore.engine.extract import FeatureExtractor
    from reidcore.fileio import atomic_open

    run_path = Path(run)
    if not (run_path / "recipe.toml").is_file():
        raise ReidError(f"{run_path} is not a run directory (no recipe.toml)"
                        + ("" if run_path.exists() else ": it does not exist"))
    extractor = FeatureExtractor(run_path, checkpoint=checkpoint, plugins=plugins,
                                 overrides=overrides)
    recipe = extractor.recipe
    run_flip, run_normalise = evaluation_options(recipe)
    flip = run_flip if flip is None else flip
    normalise = run_normalise if normalise is None else normalise
    from reidcore.recipe import dumps

    metadata = {"recipe": dumps(recipe), "flip": str(flip).lower(),
                "normalise": str(normalise).lower(), "run": str(run_path.resolve()),
                "checkpoint": str(extractor.checkpoint or "")}
    model = export_method(extractor.method, recipe.loader.height, recipe.loader.width,
                          flip=flip, normalise=normalise, opset=opset, metadata=metadata,
                          name=f"method '{recipe.method.name}' of {run_path}")
    if images is not None:
        source = "given images"
    else:
        images, source = images_from_test_set(recipe, plugins.registry, parity_images)
    parity = check_parity(extractor.method, model, images, flip=flip, normalise=normalise,
                          source=source)
    if not parity.passed(tolerance):
        raise ReidError(f"{parity.describe()}: above the tolerance {tolerance:g}; "
                        f"{out} was not written")
    out = Path(out)
    with atomic_open(out, "wb") as handle:
        handle.write(model)
    return ExportResult(out, opset, flip, normalise, parity,
                        Path(extractor.checkpoint) if extractor.checkpoint else None)


@torch.no_grad()
def check_parity(method: Any, model: bytes, images: torch.Tensor, *, flip: bool,
                 normalise: bool, source: str) -> Parity:
    """PyTorch's embedding (as exported) against onnxruntime's, on ``images``."""
    from reidcore.export.embedding import InferenceEmbedding

    reference = InferenceEmbedding(method, flip, normalise).eval()(images).numpy()
    exported = OnnxEmbedding(create_session(model)).embed(images).numpy()
    return compare(reference, exported, source)

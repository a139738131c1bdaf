"""Embedding with an exported ``.onnx`` file through onnxruntime, shaped as a method
(``embed``, ``modules``) and as a :class:`~reidcore.engine.extract.FeatureExtractor` (the
same attributes and call; not a subclass, so that the engine, which opens one for a
``.onnx`` path, is not imported back), so that ``reid eval`` and ``reid extract`` score a
deployed model with the run's own code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reidcore.errors import ReidError
from reidcore.export.deps import require
from reidcore.export.onnx_export import INPUT, METADATA_PREFIX


def create_session(model: bytes | str | Path, device: str = "cpu") -> Any:
    """An onnxruntime session (CUDA when asked for and available, else CPU); a file that is
    not a valid model is a ReidError naming it."""
    ort = require("onnxruntime", "running an exported ONNX model")
    providers = ["CPUExecutionProvider"]
    if device in ("cuda", "auto") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        what = "the exported model" if isinstance(model, bytes) else str(model)
        raise ReidError(f"onnxruntime cannot load {what}: {str(exc).strip()}") from None


class OnnxEmbedding:
    """An exported embedding in a method's shape: ``embed(images) -> B x D`` (flip and
    normalisation as baked in at export), ``modules()`` empty (nothing to train)."""

    def __init__(self, session: Any):
        self.session = session

    def modules(self) -> Mapping[str, torch.nn.Module]:
        return {}

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().float().cpu().numpy()
        (features,) = self.session.run(None, {INPUT: np.ascontiguousarray(array)})
        return torch.from_numpy(features)


def read_metadata(session: Any) -> dict[str, str]:
    """The ``reid.*`` properties written at export (without the prefix)."""
    props = session.get_modelmeta().custom_metadata_map
    return {key[len(METADATA_PREFIX):]: value for key, value in props.items()
            if key.startswith(METADATA_PREFIX)}


class OnnxFeatureExtractor:
    """:class:`FeatureExtractor` over an exported file: the recipe comes from the file's
    metadata (``--set`` overrides apply, e.g. ``evaluate.rerank=true``), the images are
    transformed as the run's test images were, flip is already inside the graph."""

    def __init__(self, path: str | Path, *, plugins: Any, device: str = "cpu",
                 batch_size: int = 64, overrides: Sequence[str] = ()):
        from reidcore.compat import tomllib
        from reidcore.data.transforms import build_test_transform
        from reidcore.recipe import resolve

        path = Path(path)
        if not path.is_file():
            raise ReidError(f"no such ONNX file: {path}")
        fixed = [item for item in overrides if item.split("=", 1)[0].strip() == "evaluate.flip"]
        if fixed:
            raise ReidError(f"--set {fixed[0]}: flip averaging is inside {path}'s graph (chosen "
                            "at export); export again with reid export --flip / --no-flip")
        session = create_session(path, device)
        metadata = read_metadata(session)
        if "recipe" not in metadata:
            raise ReidError(f"{path} was not written by reid export (no reid.recipe metadata): "
                            "its input size and test sets are unknown")
        self.recipe = resolve(tomllib.loads(metadata["recipe"]), f"{path} (embedded recipe)",
                              plugins.registry, plugins.hook, overrides)
        height, width = session.get_inputs()[0].shape[2:]
        if (self.recipe.loader.height, self.recipe.loader.width) != (height, width):
            raise ReidError(f"{path} takes {height} x {width} images; the recipe (after "
                            f"--set) asks for {self.recipe.loader.height} x "
                            f"{self.recipe.loader.width}: export again at that size")
        self.device = torch.device("cpu")
        self.batch_size = batch_size
        self.flip = False  # baked in at export when the run flips
        self.transform = build_test_transform(self.recipe.loader)
        self.method = OnnxEmbedding(session)
        self.checkpoint = path
        self.metadata = metadata

    def _tensor(self, images: Sequence[Any]) -> torch.Tensor:
        from reidcore.data.loaders import open_image

        return torch.stack([self.transform(open_image(str(image))) for image in images])

    def __call__(self, images: Sequence[Any] | torch.Tensor) -> torch.Tensor:
        """N x D embeddings of image paths or of a normalised N x 3 x H x W tensor."""
        from reidcore.progress import progress

        starts = range(0, len(images), self.batch_size)
        outputs = []
        for start in progress(starts, total=len(starts), desc="embedding images",
                              unit="batch"):
            chunk = images[start:start + self.batch_size]
            batch = chunk if isinstance(chunk, torch.Tensor) else self._tensor(chunk)
            outputs.append(self.method.embed(batch))
        return torch.cat(outputs) if outputs else torch.empty(0)

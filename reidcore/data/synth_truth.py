"""The ground truth behind the synthetic data: what no real data set can give.

Every image of the built-in generator is a scene (:class:`~reidcore.data.synth_render.Scene`)
painted with an identity through a camera, so the truth of a method's mechanism can be
rendered exactly:

* :meth:`SyntheticTruth.swap`: identity *a* in the scene of image *s* (pose, viewpoint,
  placement, background crop, occluder, exposure, noise, camera: all of *s*; body and
  clothing texture: *a*'s) - what DG-Net's generator should produce from (a, s);
* :meth:`SyntheticTruth.translate`: the same scene and the same person seen through the
  other style's camera of the same index (the other style's background, colour cast,
  contrast, blur, noise level and JPEG quality; the synthetic style's drop shadow) - what a
  synthetic-to-real translator (CUT) should produce; or through any other camera of that
  style (``camera_index``), since unpaired data does not say which camera matches. The
  occluder stays: it is part of the scene, though the ``real`` style draws occluders more
  often for its own images;
* :meth:`SyntheticTruth.texture`: the identity's UV texture map (what SAN's decoder
  estimates).

Truth images go through the JPEG encoding of the camera they are seen by, as the data
set's images do, so that a method's output, the truth and the "copy the input" baselines
are compared on the same footing. A person mask (the figure's pixels that no occluder
hides) comes with every rendered truth.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path

import attrs
import numpy as np
from PIL import Image

from reidcore.data.synth_identity import PreparedIdentity, make_texture
from reidcore.data.synth_plan import STYLES, ImageJob, SynthParams, plan
from reidcore.data.synth_render import camera, draw_scene, paint
from reidcore.errors import ReidError


@attrs.frozen
class TruthImage:
    """A rendered truth: RGB uint8 H x W x 3 and the person mask (bool H x W)."""

    image: np.ndarray = attrs.field(eq=False)
    mask: np.ndarray = attrs.field(eq=False)


def _jpeg(image: Image.Image, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


class SyntheticTruth:
    """The truth behind one synthetic data set (its :class:`SynthParams`; see the module
    docstring). Images are named by their file name in the data set (e.g.
    ``0042_c2s1_000013_01.jpg``); identities by their appearance key (the file's pid, or
    a distractor's number above the pids)."""

    def __init__(self, params: SynthParams):
        self.params = params
        self.jobs: dict[str, ImageJob] = {job.filename: job for job in plan(params)}
        self._identities: dict[tuple[str, int], PreparedIdentity] = {}

    @classmethod
    def from_dataset(cls, root: str | Path) -> SyntheticTruth:
        """The truth of a generated data set folder (read from its ``manifest.json``)."""
        manifest = Path(root) / "manifest.json"
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            params = SynthParams(**data["parameters"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReidError(f"{manifest}: not the manifest of a synthetic data set "
                            f"({type(exc).__name__}: {exc})") from None
        return cls(params)

    def job(self, filename: str) -> ImageJob:
        name = Path(filename).name
        try:
            return self.jobs[name]
        except KeyError:
            raise ReidError(f"{name} is not an image of the synthetic data set "
                            f"{self.params.key()}") from None

    def identity_of(self, filename: str) -> int:
        return self.job(filename).identity

    def _prepared(self, params: SynthParams, identity: int) -> PreparedIdentity:
        key = (params.style, identity)
        if key not in self._identities:
            self._identities[key] = PreparedIdentity(params, identity)
        return self._identities[key]

    @property
    def cameras(self) -> range:
        """The camera indices of either style (1-based, as in the file names' ``c<N>``)."""
        return range(1, self.params.cameras + 1)

    def render(self, filename: str, identity: int | None = None,
               style: str | None = None, camera_index: int | None = None) -> TruthImage:
        """The scene of ``filename`` painted with ``identity`` (default: its own) through
        camera ``camera_index`` (default: the image's own index) of ``style`` (default: the
        data set's); identities are always the data set's own people."""
        job = self.job(filename)
        style = style or self.params.style
        if style not in STYLES:
            raise ReidError(f"unknown synthetic style {style!r}; expected one of {STYLES}")
        index = job.camera if camera_index is None else camera_index
        if index not in self.cameras:
            raise ReidError(f"camera {index} does not exist in the synthetic data set "
                            f"{self.params.key()}: its cameras are 1 to {self.params.cameras}")
        scene = draw_scene(self.params, job)
        person = self._prepared(self.params, job.identity if identity is None else identity)
        seen_by = attrs.evolve(self.params, style=style)
        cam = camera(seen_by, index)
        image, mask = paint(seen_by, person, scene, cam)
        return TruthImage(_jpeg(image, cam.quality), mask)

    def swap(self, appearance: str, structure: str) -> TruthImage:
        """The identity of image ``appearance`` in the scene of image ``structure``."""
        return self.render(structure, identity=self.identity_of(appearance))

    def translate(self, filename: str, style: str,
                  camera_index: int | None = None) -> TruthImage:
        """Image ``filename``'s scene and person, seen through ``style``'s camera of the
        same index (or of ``camera_index``: an unpaired translator cannot know which of the
        other style's cameras goes with which of its own)."""
        return self.render(filename, style=style, camera_index=camera_index)

    def texture(self, identity: int) -> np.ndarray:
        """The identity's UV texture map (RGB uint8, 256 x 256)."""
        return make_texture(self.params, identity)

    def mean_texture(self, identities: Iterable[int]) -> np.ndarray:
        """The per-pixel mean texture of ``identities`` (float32 in [0, 255]): the trivial
        estimate a texture decoder has to beat."""
        maps = [self.texture(i).astype(np.float32) for i in identities]
        if not maps:
            raise ReidError("mean_texture() of no identities")
        return np.mean(maps, axis=0)

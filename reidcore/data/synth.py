"""The synthetic pedestrian generator: procedural person images, no download needed.

This module writes a data set (and caches it). The rest is split by job, and the public
names of each are re-exported here: :mod:`reidcore.data.synth_plan` (parameters, layout,
random streams), :mod:`reidcore.data.synth_identity` (appearance, texture maps) and
:mod:`reidcore.data.synth_render` (cameras, one image).

Every identity has a UV-style *texture map* (skin, hair, upper garment with a pattern
(solid, stripes, checks or a logo), sleeves, lower garment, shoes, optional bag or
backpack, optional hat), painted once and written out as ``textures/NNNN.png`` (256x256),
so image/texture pairs exist as in SAN's PIT data.

An image is an articulated 2-D figure whose parts (head, torso, arms, legs, shoes, bag,
hat) are affine-mapped regions of that texture: the viewpoint picks the region (the front
of the torso shows the logo, the back shows the backpack, the side a narrow torso), the
walking phase swings the limbs, and scale, position, and partial occlusion are jittered.

Each camera has its own background, viewpoint preference, illumination, colour cast,
blur, noise and JPEG quality, so matching across cameras is the real problem. Two
``style`` values form a domain gap: ``synthetic`` (flat shading, clean backgrounds, like a
game engine) and ``real`` (cluttered textured backgrounds, strong colour shifts, sensor
noise, blur, JPEG artefacts). Identity appearance is drawn from a seed that includes the
style, so the identities of the two styles are disjoint people.

Output uses the Market-1501 layout and naming (``bounding_box_train``, ``query``,
``bounding_box_test``; ``0001_c1s1_000001_01.jpg``; distractor identities are written with
pid ``0000`` into the gallery) plus ``textures/`` and ``manifest.json`` (parameters and
generator version). Train and test identities are disjoint; query holds one image per
test identity and camera, the gallery the rest plus the distractors.

Deterministic: every image draws from its own random stream keyed by (seed, style,
identity, camera, index), so the same parameters give byte-identical files whatever the
number of worker processes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from reidcore.data.synth_identity import (
    REGIONS,
    TEXTURE_SIZE,
    Appearance,
    PreparedIdentity,
    appearance,
    make_texture,
)
from reidcore.data.synth_plan import (
    GENERATOR_VERSION,
    SPLIT_DIRS,
    STYLES,
    ImageJob,
    Style,
    SynthParams,
    parse_size,
    plan,
    visible_cameras,
)
from reidcore.data.synth_render import Camera, camera, render
from reidcore.errors import ReidError

__all__ = [
    "GENERATOR_VERSION", "REGIONS", "SPLIT_DIRS", "STYLES", "TEXTURE_SIZE", "Appearance",
    "Camera", "ImageJob", "PreparedIdentity", "Style", "SynthParams", "appearance", "camera",
    "default_cache_root", "ensure_dataset", "make_texture", "parse_size", "plan", "render",
    "write_dataset",
]


def _render_chunk(args: tuple[SynthParams, str, Sequence[ImageJob]]) -> int:
    params, out, jobs = args
    out_dir = Path(out)
    idents: dict[int, PreparedIdentity] = {}
    textured = params.ids + params.test_ids  # distractors (above) get no texture file
    for job in jobs:
        ident = idents.get(job.identity)
        if ident is None:
            ident = idents[job.identity] = PreparedIdentity(params, job.identity)
        if job.identity <= textured and job.index == 0 and job.camera == visible_cameras(
                params, job.identity)[0]:  # the identity's first image writes its texture
            _write_texture(out_dir, job.identity, ident.texture)
        image = render(params, ident, job)
        image.save(out_dir / job.split / job.filename, "JPEG",
                   quality=camera(params, job.camera).quality)
    return len(jobs)


def _write_texture(out_dir: Path, identity: int, texture: np.ndarray) -> None:
    Image.fromarray(texture).save(out_dir / "textures" / f"{identity:04d}.png",
                                  compress_level=1)


def _chunks(jobs: list[ImageJob], size: int) -> Iterable[list[ImageJob]]:
    # group by identity so each worker prepares an identity once
    for start in range(0, len(jobs), size):
        yield jobs[start:start + size]


def write_dataset(params: SynthParams, out: str | os.PathLike, workers: int = 1) -> Path:
    """Render the whole data set into ``out`` (created; must not hold another data set).

    Returns ``out``. ``workers > 1`` renders in that many processes; the files are the
    same either way.
    """
    out_dir = Path(out)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / "manifest.json").exists():
            raise ReidError(f"{out_dir} exists and is not empty; choose an empty or new folder")
        shutil.rmtree(out_dir)
    for split in (*SPLIT_DIRS, "textures"):
        (out_dir / split).mkdir(parents=True, exist_ok=True)
    jobs = plan(params)
    chunks = [(params, str(out_dir), chunk) for chunk in _chunks(jobs, 64)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_render_chunk, chunks))
    else:
        for chunk in chunks:
            _render_chunk(chunk)
    counts = {split: sum(1 for j in jobs if j.split == split) for split in SPLIT_DIRS}
    manifest = {
        "generator": "reidcore.data.synth",
        "version": GENERATOR_VERSION,
        "layout": "market1501",
        "parameters": params.to_dict(),
        "images": counts,
        "train_ids": params.ids,
        "test_ids": params.test_ids,
        "distractor_ids": params.distractors,
        "textures": "textures/NNNN.png (256x256, one per train and test identity)",
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out_dir


def default_cache_root() -> Path:
    """``$REID_CACHE`` or ``~/.cache/reid``."""
    env = os.environ.get("REID_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "reid"


def ensure_dataset(params: SynthParams, root: str | os.PathLike | None = None,
                   workers: int = 1) -> Path:
    """The data set's folder, generated on first use (atomically: concurrent callers are
    safe, the loser's copy is discarded). ``root`` defaults to ``<cache>/synthetic``."""
    base = Path(root).expanduser() if root else default_cache_root() / "synthetic"
    target = base / params.key()
    if (target / "manifest.json").exists():
        return target
    try:
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{params.key()}.", dir=base))
    except OSError as exc:
        raise ReidError(f"cannot create the synthetic data cache in {base}: {exc.strerror}; "
                        "set REID_CACHE to a writable folder") from None
    try:
        write_dataset(params, tmp / "data", workers=workers)
        try:
            os.replace(tmp / "data", target)
        except OSError:
            if not (target / "manifest.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target

"""The synthetic pedestrian generator: procedural person images, no download needed.

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
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Literal

import attrs
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from reidcore.errors import ReidError

GENERATOR_VERSION = "1.1"
TEXTURE_SIZE = 256
STYLES = ("synthetic", "real")
Style = Literal["synthetic", "real"]

# Texture layout: name -> (x0, y0, x1, y1) in a 256 x 256 map.
REGIONS: dict[str, tuple[int, int, int, int]] = {
    "face": (0, 0, 64, 64),
    "head_back": (64, 0, 128, 64),
    "head_side": (128, 0, 192, 64),
    "hat": (192, 0, 256, 32),
    "shoe": (192, 32, 256, 64),
    "torso_front": (0, 64, 96, 160),
    "torso_back": (96, 64, 192, 160),
    "arm": (192, 64, 256, 160),
    "leg_left": (0, 160, 64, 256),
    "leg_right": (64, 160, 128, 256),
    "bag": (128, 160, 192, 256),
    "torso_side": (192, 160, 256, 256),
}

_SIZE_RE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


def parse_size(size: str) -> tuple[int, int]:
    """``"128x64"`` -> ``(128, 64)`` (height, width)."""
    match = _SIZE_RE.match(size)
    if not match:
        raise ValueError(f"expected a size like '128x64' (height x width), got {size!r}")
    height, width = int(match.group(1)), int(match.group(2))
    if height < 16 or width < 8:
        raise ValueError(f"size {size!r} is too small (at least 16x8)")
    return height, width


@attrs.frozen
class SynthParams:
    """What a synthetic data set is generated from (the cache key and the manifest)."""

    ids: int = 40
    """Training identities."""
    test_ids: int = 40
    """Test identities (disjoint from the training ones)."""
    distractors: int = 10
    """Extra identities in the gallery only, written with pid 0 (as in Market-1501)."""
    cameras: int = 4
    images_per_camera: int = 4
    style: str = "synthetic"
    height: int = 128
    width: int = 64
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        if self.style not in STYLES:
            raise ReidError(f"unknown synthetic style {self.style!r}; expected one of {STYLES}")
        if self.cameras < 2 or self.cameras > 99:
            raise ReidError(f"synthetic data needs 2 to 99 cameras, got {self.cameras}")
        if self.images_per_camera < 2:
            raise ReidError("synthetic data needs images_per_camera >= 2 (one goes to the "
                            f"query, the rest to the gallery), got {self.images_per_camera}")
        if self.ids < 1 or self.test_ids < 1 or self.distractors < 0:
            raise ReidError("synthetic data needs ids >= 1, test_ids >= 1 and distractors >= 0")

    def key(self) -> str:
        """A readable cache-directory name unique to these parameters and the version."""
        return (f"{self.style}-{self.height}x{self.width}-i{self.ids}-t{self.test_ids}"
                f"-d{self.distractors}-c{self.cameras}-n{self.images_per_camera}"
                f"-s{self.seed}-v{GENERATOR_VERSION}")

    def to_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.frozen
class ImageJob:
    """One image to render: where it goes and what it shows."""

    split: str  # bounding_box_train | query | bounding_box_test
    filename: str
    identity: int  # appearance key (file pid, or a distractor number above the pids)
    pid: int  # pid written in the file name (0 for distractors)
    camera: int  # 1-based
    index: int  # index of this image among the identity's images in this camera


SPLIT_DIRS = ("bounding_box_train", "query", "bounding_box_test")
_STYLE_CODE = {"synthetic": 1, "real": 2}


def _rng(params: SynthParams, *key: int) -> np.random.Generator:
    return np.random.default_rng([params.seed, _STYLE_CODE[params.style], *key])


def _visible_cameras(params: SynthParams, identity: int) -> list[int]:
    rng = _rng(params, 1, identity)
    count = int(rng.integers(2, params.cameras + 1))
    return sorted(int(c) + 1 for c in rng.choice(params.cameras, size=count, replace=False))


def plan(params: SynthParams) -> list[ImageJob]:
    """Every image of the data set, in a fixed order (cheap: no rendering)."""
    jobs: list[ImageJob] = []
    frames: dict[int, int] = {}

    def name(pid: int, camera: int) -> str:
        frames[camera] = frames.get(camera, 0) + 1
        return f"{pid:04d}_c{camera}s1_{frames[camera]:06d}_01.jpg"

    for identity in range(1, params.ids + 1):
        for camera in _visible_cameras(params, identity):
            for index in range(params.images_per_camera):
                jobs.append(ImageJob("bounding_box_train", name(identity, camera), identity,
                                     identity, camera, index))
    first_test = params.ids + 1
    for identity in range(first_test, first_test + params.test_ids):
        for camera in _visible_cameras(params, identity):
            for index in range(params.images_per_camera):
                split = "query" if index == 0 else "bounding_box_test"
                jobs.append(ImageJob(split, name(identity, camera), identity, identity, camera,
                                     index))
    first_distractor = first_test + params.test_ids
    for identity in range(first_distractor, first_distractor + params.distractors):
        for camera in _visible_cameras(params, identity):
            for index in range(max(1, params.images_per_camera // 2)):
                jobs.append(ImageJob("bounding_box_test", name(0, camera), identity, 0, camera,
                                     index))
    return jobs


# --- identities and their textures -----------------------------------------------------

_SKIN = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 134, 95],
                  [161, 102, 68], [112, 72, 48], [80, 52, 36]], dtype=np.float32)
_HAIR = np.array([[20, 16, 14], [60, 40, 25], [110, 75, 40], [200, 170, 110], [150, 150, 150],
                  [140, 60, 30], [40, 30, 30]], dtype=np.float32)


def _hsv_colour(rng: np.random.Generator, sat: tuple[float, float] = (0.0, 1.0),
                val: tuple[float, float] = (0.1, 1.0)) -> np.ndarray:
    h = rng.random()
    s = rng.uniform(*sat)
    v = rng.uniform(*val)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32) * 255


@attrs.frozen
class Appearance:
    skin: tuple
    hair: tuple
    long_hair: bool
    upper: tuple
    upper2: tuple
    pattern: str  # solid | stripes | checks | logo
    period: int
    long_sleeves: bool
    lower: tuple
    lower_kind: str  # trousers | shorts | skirt
    shoes: tuple
    bag: str  # none | backpack | shoulder
    bag_colour: tuple
    hat: bool
    hat_colour: tuple
    build: float  # body width factor
    height: float  # body height factor


def appearance(params: SynthParams, identity: int) -> Appearance:
    rng = _rng(params, 2, identity)
    colour = lambda *a: tuple(float(x) for x in _hsv_colour(rng, *a))  # noqa: E731
    return Appearance(
        skin=tuple(float(x) for x in _SKIN[rng.integers(len(_SKIN))]),
        hair=tuple(float(x) for x in _HAIR[rng.integers(len(_HAIR))]),
        long_hair=bool(rng.random() < 0.35),
        upper=colour(), upper2=colour(),
        pattern=str(rng.choice(["solid", "stripes", "checks", "logo"], p=[0.4, 0.2, 0.15, 0.25])),
        period=int(rng.integers(6, 16)),
        long_sleeves=bool(rng.random() < 0.5),
        lower=colour((0.0, 0.8), (0.08, 0.9)),
        lower_kind=str(rng.choice(["trousers", "shorts", "skirt"], p=[0.65, 0.2, 0.15])),
        shoes=colour((0.0, 0.6), (0.05, 0.9)),
        bag=str(rng.choice(["none", "backpack", "shoulder"], p=[0.5, 0.3, 0.2])),
        bag_colour=colour(),
        hat=bool(rng.random() < 0.2),
        hat_colour=colour(),
        build=float(rng.uniform(0.85, 1.15)),
        height=float(rng.uniform(0.92, 1.05)),
    )


def _pattern(h: int, w: int, a: Appearance, base: tuple, second: tuple) -> np.ndarray:
    out = np.empty((h, w, 3), dtype=np.float32)
    out[:] = base
    p = a.period
    if a.pattern == "stripes":
        rows = (np.arange(h) // p) % 2 == 1
        out[rows] = second
    elif a.pattern == "checks":
        yy, xx = np.mgrid[0:h, 0:w]
        out[((yy // p) + (xx // p)) % 2 == 1] = second
    return out


def make_texture(params: SynthParams, identity: int) -> np.ndarray:
    """The identity's 256 x 256 x 3 uint8 texture map (layout: ``REGIONS``)."""
    a = appearance(params, identity)
    tex = np.zeros((TEXTURE_SIZE, TEXTURE_SIZE, 3), dtype=np.float32)
    tex[:] = (128, 128, 128)

    def fill(region: str, array_or_colour) -> None:
        x0, y0, x1, y1 = REGIONS[region]
        tex[y0:y1, x0:x1] = array_or_colour

    # head: face (skin, hair on top, eyes), back (hair), side (half hair)
    x0, y0, x1, y1 = REGIONS["face"]
    fill("face", a.skin)
    hair_rows = 22 if a.long_hair else 16
    tex[y0:y0 + hair_rows, x0:x1] = a.hair
    tex[y0 + 30:y0 + 35, x0 + 18:x0 + 26] = (30, 30, 30)
    tex[y0 + 30:y0 + 35, x0 + 38:x0 + 46] = (30, 30, 30)
    tex[y0 + 46:y0 + 49, x0 + 24:x0 + 40] = np.array(a.skin) * 0.6
    fill("head_back", a.hair)
    x0, y0, x1, y1 = REGIONS["head_side"]
    fill("head_side", a.skin)
    tex[y0:y0 + hair_rows, x0:x1] = a.hair
    tex[y0:y1, x0:x0 + 36] = a.hair
    fill("hat", a.hat_colour)
    fill("shoe", a.shoes)
    # upper garment
    for region in ("torso_front", "torso_back", "torso_side"):
        x0, y0, x1, y1 = REGIONS[region]
        tex[y0:y1, x0:x1] = _pattern(y1 - y0, x1 - x0, a, a.upper, a.upper2)
    if a.pattern == "logo":
        x0, y0, _, _ = REGIONS["torso_front"]
        tex[y0 + 24:y0 + 56, x0 + 30:x0 + 66] = a.upper2
        tex[y0 + 32:y0 + 48, x0 + 40:x0 + 56] = a.upper
    x0, y0, x1, y1 = REGIONS["arm"]
    tex[y0:y1, x0:x1] = a.upper
    sleeve = 80 if a.long_sleeves else 34
    tex[y0 + sleeve:y1, x0:x1] = a.skin
    # lower garment
    for region in ("leg_left", "leg_right"):
        x0, y0, x1, y1 = REGIONS[region]
        tex[y0:y1, x0:x1] = a.lower
        if a.lower_kind == "shorts":
            tex[y0 + 40:y1, x0:x1] = a.skin
        elif a.lower_kind == "skirt":
            tex[y0 + 52:y1, x0:x1] = a.skin
    fill("bag", a.bag_colour)
    x0, y0, x1, y1 = REGIONS["bag"]
    tex[y0 + 10:y0 + 14, x0:x1] = np.array(a.bag_colour) * 0.6
    return np.clip(tex, 0, 255).astype(np.uint8)


def _alpha_region(tex: Image.Image, region: str) -> Image.Image:
    crop = tex.crop(REGIONS[region]).convert("RGBA")
    if region in ("face", "head_back", "head_side", "shoe"):
        mask = Image.new("L", crop.size, 0)
        ImageDraw.Draw(mask).ellipse((0, 0, crop.size[0] - 1, crop.size[1] - 1), fill=255)
        crop.putalpha(mask)
    return crop


class _Identity:
    """An identity prepared for rendering at one image size: texture region crops."""

    def __init__(self, params: SynthParams, identity: int):
        self.look = appearance(params, identity)
        self.texture = make_texture(params, identity)
        texture = Image.fromarray(self.texture)
        scale = params.height / 160.0  # region pixels to roughly on-screen size
        self.parts: dict[str, Image.Image] = {}
        for region in REGIONS:
            crop = _alpha_region(texture, region)
            w = max(2, round(crop.size[0] * scale))
            h = max(2, round(crop.size[1] * scale))
            self.parts[region] = crop.resize((w, h), Image.Resampling.BOX)


# --- cameras ----------------------------------------------------------------------------


@attrs.frozen
class Camera:
    gain: tuple  # per-channel multiplicative colour cast and brightness
    offset: float
    contrast: float
    blur: float
    noise: float
    quality: int
    view_prior: tuple  # probabilities of front, back, side
    background: np.ndarray = attrs.field(eq=False)


def _background(rng: np.random.Generator, style: str, height: int, width: int) -> np.ndarray:
    h, w = height + 16, width + 16
    wall, floor = _hsv_colour(rng, (0.0, 0.5), (0.3, 0.9)), _hsv_colour(rng, (0.0, 0.4),
                                                                          (0.2, 0.7))
    horizon = int(h * rng.uniform(0.45, 0.7))
    img = np.empty((h, w, 3), dtype=np.float32)
    ramp = np.linspace(0.85, 1.1, h, dtype=np.float32)[:, None, None]
    img[:horizon] = wall
    img[horizon:] = floor
    img *= ramp
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    shapes = int(rng.integers(2, 5)) if style == "synthetic" else int(rng.integers(12, 30))
    for _ in range(shapes):
        colour = tuple(int(c) for c in _hsv_colour(rng, (0.0, 0.9), (0.1, 1.0)))
        x0 = int(rng.integers(-w // 4, w))
        y0 = int(rng.integers(-h // 4, horizon + h // 8))
        x1 = x0 + int(rng.integers(w // 8, w // 2))
        y1 = y0 + int(rng.integers(h // 16, h // 2))
        if style == "real" and rng.random() < 0.4:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 4)))
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    out = np.asarray(canvas, dtype=np.float32)
    if style == "real":
        grain = rng.normal(0.0, 18.0, (h // 4 + 1, w // 4 + 1, 1)).astype(np.float32)
        grain = np.repeat(np.repeat(grain, 4, axis=0), 4, axis=1)[:h, :w]
        out = out + grain
        out = np.asarray(Image.fromarray(np.clip(out, 0, 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(0.8)), dtype=np.float32)
    return out


@lru_cache(maxsize=64)
def camera(params: SynthParams, index: int) -> Camera:
    rng = _rng(params, 3, index)
    real = params.style == "real"
    spread = 0.25 if real else 0.12
    gain = tuple(float(g) for g in rng.uniform(1 - spread, 1 + spread, 3)
                 * rng.uniform(0.75, 1.2))
    view = rng.dirichlet((1.5, 1.5, 1.5))
    return Camera(
        gain=gain,
        offset=float(rng.uniform(-20, 20) if real else rng.uniform(-8, 8)),
        contrast=float(rng.uniform(0.7, 1.15) if real else rng.uniform(0.9, 1.05)),
        blur=float(rng.uniform(0.3, 1.1) if real else rng.uniform(0.0, 0.25)),
        noise=float(rng.uniform(3, 9) if real else rng.uniform(0.0, 1.5)),
        quality=int(rng.integers(45, 80) if real else 95),
        view_prior=tuple(float(v) for v in view),
        background=_background(rng, params.style, params.height, params.width),
    )


# --- rendering --------------------------------------------------------------------------


def _place(layer: Image.Image, part: Image.Image, pivot: tuple[float, float], width: float,
           length: float, angle: float = 0.0) -> None:
    """Map ``part`` onto the rectangle of ``width`` x ``length`` hanging from ``pivot``,
    rotated by ``angle`` (radians, counter-clockwise in image coordinates)."""
    if width <= 0.5 or length <= 0.5:
        return
    rw, rh = part.size
    c, s = math.cos(angle), math.sin(angle)
    px, py = pivot
    # corners of the placed rectangle
    corners = [(px + c * u - s * v, py + s * u + c * v)
               for u in (-width / 2, width / 2) for v in (0.0, length)]
    xs = [p[0] for p in corners]
    ys = [p[1] for p in corners]
    x0, y0 = max(0, math.floor(min(xs))), max(0, math.floor(min(ys)))
    x1, y1 = min(layer.size[0], math.ceil(max(xs))), min(layer.size[1], math.ceil(max(ys)))
    if x1 <= x0 or y1 <= y0:
        return
    ku, kv = rw / width, rh / length
    # source (sx, sy) from output (x, y): rotate back, then scale to the region
    a, b = ku * c, ku * s
    d, e = -kv * s, kv * c
    cx = rw / 2 - a * px - b * py
    fy = -d * px - e * py
    # shift for the bounding-box origin
    cx += a * x0 + b * y0
    fy += d * x0 + e * y0
    # nearest: the parts are pre-scaled to about their on-screen size, and bilinear on
    # RGBA costs two premultiplication passes per part
    mapped = part.transform((x1 - x0, y1 - y0), Image.Transform.AFFINE, (a, b, cx, d, e, fy),
                            resample=Image.Resampling.NEAREST)
    layer.alpha_composite(mapped, dest=(x0, y0))


def _figure(ident: _Identity, rng: np.random.Generator, height: int, width: int,
            view: str) -> Image.Image:
    """The person on a transparent layer."""
    look = ident.look
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    unit = height * 0.86 * look.height * rng.uniform(0.88, 1.04)  # figure height in pixels
    cx = width / 2 + rng.uniform(-0.08, 0.08) * width
    top = height * 0.97 - unit + rng.uniform(-0.03, 0.03) * height
    phase = rng.uniform(0, 2 * math.pi)
    swing = math.sin(phase) * rng.uniform(0.15, 0.45)
    bw = look.build
    parts = ident.parts

    def at(x: float, y: float) -> tuple[float, float]:
        return cx + x * unit, top + y * unit

    side = view == "side"
    torso_w = (0.13 if side else 0.24) * bw
    leg_len, arm_len = 0.45, 0.35
    hip_y, shoulder_y = 0.5, 0.17
    # legs (side view: far leg first, swinging opposite)
    if side:
        for sign in (-1, 1):
            leg = "leg_left" if sign < 0 else "leg_right"
            angle = sign * swing
            _place(layer, parts[leg], at(0, hip_y), 0.1 * bw * unit, leg_len * unit, angle)
            fx = cx - math.sin(angle) * leg_len * unit
            fy = top + (hip_y + math.cos(angle) * leg_len) * unit
            _place(layer, parts["shoe"], (fx + 0.03 * unit, fy - 0.03 * unit), 0.14 * unit,
                   0.06 * unit)
    else:
        for sign, leg in ((-1, "leg_left"), (1, "leg_right")):
            if view == "back":
                leg = "leg_right" if leg == "leg_left" else "leg_left"
            lift = abs(swing) * 0.08 if sign * swing > 0 else 0.0
            length = (leg_len - lift) * unit
            x = sign * 0.055 * bw
            _place(layer, parts[leg], at(x, hip_y), 0.1 * bw * unit, length)
            foot = (cx + x * unit, top + hip_y * unit + length - 0.025 * unit)
            _place(layer, parts["shoe"], foot, 0.1 * unit, 0.055 * unit)
    if side and look.bag == "backpack":
        _place(layer, parts["bag"], at(-0.11 * bw, shoulder_y + 0.01), 0.1 * unit, 0.22 * unit)
    if side:  # far arm behind the torso
        _place(layer, parts["arm"], at(0, shoulder_y), 0.06 * unit, arm_len * unit, swing)
    torso = {"front": "torso_front", "back": "torso_back", "side": "torso_side"}[view]
    _place(layer, parts[torso], at(0, 0.135), torso_w * unit, (hip_y - 0.135 + 0.02) * unit)
    if not side:
        for sign in (-1, 1):
            length = arm_len * (1 - 0.15 * abs(swing))
            _place(layer, parts["arm"], at(sign * (torso_w / 2 + 0.02), shoulder_y),
                   0.06 * unit, length * unit, sign * 0.08)
    if look.bag == "backpack" and view == "back":
        _place(layer, parts["bag"], at(0, shoulder_y + 0.01), 0.18 * bw * unit, 0.22 * unit)
    if look.bag == "backpack" and view == "front":
        for sign in (-1, 1):
            _place(layer, parts["bag"], at(sign * 0.07 * bw, 0.14), 0.025 * unit, 0.16 * unit)
    if look.bag == "shoulder":
        x = (0.14 * bw) if view != "back" else (-0.14 * bw)
        _place(layer, parts["bag"], at(0 if side else x, 0.42), 0.11 * unit, 0.12 * unit)
    if side:  # near arm in front
        _place(layer, parts["arm"], at(0.0, shoulder_y), 0.06 * unit, arm_len * unit, -swing)
    head = {"front": "face", "back": "head_back", "side": "head_side"}[view]
    _place(layer, parts[head], at(0, 0.0), 0.12 * unit, 0.14 * unit)
    if look.hat:
        _place(layer, parts["hat"], at(0, -0.015), 0.14 * unit, 0.05 * unit)
    if side and rng.random() < 0.5:
        layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return layer


def render(params: SynthParams, ident: _Identity, job: ImageJob) -> Image.Image:
    """Render one image (RGB) of ``job``; pure function of its arguments."""
    rng = _rng(params, 4, job.identity, job.camera, job.index)
    cam = camera(params, job.camera)
    h, w = params.height, params.width
    oy, ox = int(rng.integers(0, 17)), int(rng.integers(0, 17))
    background = cam.background[oy:oy + h, ox:ox + w]
    canvas = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8)).convert("RGBA")
    view = ("front", "back", "side")[int(rng.choice(3, p=cam.view_prior))]
    figure = _figure(ident, rng, h, w, view)
    if params.style == "synthetic":  # a flat drop shadow
        shadow = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        ImageDraw.Draw(shadow).ellipse((w * 0.25, h * 0.94, w * 0.75, h * 0.995),
                                       fill=(0, 0, 0, 70))
        canvas.alpha_composite(shadow)
    canvas.alpha_composite(figure)
    if rng.random() < (0.3 if params.style == "real" else 0.15):  # partial occlusion
        draw = ImageDraw.Draw(canvas)
        colour = tuple(int(c) for c in _hsv_colour(rng, (0.0, 0.8), (0.1, 0.9))) + (255,)
        kind = rng.integers(3)
        if kind == 0:  # a pole
            x = rng.uniform(0.1, 0.9) * w
            pw = rng.uniform(0.06, 0.16) * w
            draw.rectangle((x - pw / 2, 0, x + pw / 2, h), fill=colour)
        elif kind == 1:  # something in front of the legs
            y = rng.uniform(0.6, 0.8) * h
            draw.rectangle((0, y, w, h), fill=colour)
        else:  # a passer-by's blob at the side
            x = rng.choice([-0.25, 0.75]) * w
            draw.ellipse((x, rng.uniform(0.2, 0.5) * h, x + 0.5 * w, h * 1.1), fill=colour)
    arr = np.asarray(canvas.convert("RGB"), dtype=np.float32)
    gain = np.asarray(cam.gain, dtype=np.float32) * np.float32(rng.uniform(0.9, 1.1))
    mean = np.float32(arr.mean())
    arr = (arr - mean) * np.float32(cam.contrast) + mean
    arr = arr * gain + np.float32(cam.offset)
    if cam.noise > 0:
        arr += rng.standard_normal(arr.shape, dtype=np.float32) * np.float32(cam.noise)
    image = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    if cam.blur > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(cam.blur * h / 128))
    return image


# --- writing a data set -----------------------------------------------------------------


def _render_chunk(args: tuple[SynthParams, str, Sequence[ImageJob]]) -> int:
    params, out, jobs = args
    out_dir = Path(out)
    idents: dict[int, _Identity] = {}
    textured = params.ids + params.test_ids  # distractors (above) get no texture file
    for job in jobs:
        ident = idents.get(job.identity)
        if ident is None:
            ident = idents[job.identity] = _Identity(params, job.identity)
        if job.identity <= textured and job.index == 0 and job.camera == _visible_cameras(
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

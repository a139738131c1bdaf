"""Rendering one synthetic image: the cameras (background, viewpoint preference, lighting,
blur, noise, JPEG quality) and the articulated figure mapped from an identity's texture.

Each camera differs, so matching across cameras is the real problem; the ``real`` style
adds clutter, colour shifts, sensor noise, blur and JPEG artefacts (the domain gap).

An image is a *scene* (:class:`Scene`: the crop of the camera's background, the viewpoint,
the figure's pose and placement, an occluder, the exposure jitter and the sensor noise, all
drawn from the image's own random stream) painted with an *identity* (body and clothing
texture) through a *camera* (background, colour cast, contrast, blur, noise level). Kept
apart, they give the ground truth of the proving ground (:mod:`reidcore.data.synth_truth`):
any identity painted into any scene, or a scene painted through the other style's camera.
"""

from __future__ import annotations

import math
from functools import lru_cache

import attrs
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from reidcore.data.synth_identity import PreparedIdentity, hsv_colour
from reidcore.data.synth_plan import ImageJob, SynthParams, random_stream


@attrs.frozen
class Camera:
    """One camera's rendering conditions (drawn once per camera index)."""

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
    wall, floor = hsv_colour(rng, (0.0, 0.5), (0.3, 0.9)), hsv_colour(rng, (0.0, 0.4),
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
        colour = tuple(int(c) for c in hsv_colour(rng, (0.0, 0.9), (0.1, 1.0)))
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
    """Camera ``index`` (1-based); cached, as every image of that camera needs it."""
    rng = random_stream(params, 3, index)
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


@attrs.frozen
class Pose:
    """The figure's draws: size factor, horizontal and vertical offsets, walking phase and
    swing amplitude, and (side views only) the draw that mirrors it."""

    scale: float
    shift_x: float
    shift_y: float
    phase: float
    amplitude: float
    mirror: float | None

    @classmethod
    def draw(cls, rng: np.random.Generator, view: str) -> Pose:
        scale = rng.uniform(0.88, 1.04)
        shift_x = rng.uniform(-0.08, 0.08)
        shift_y = rng.uniform(-0.03, 0.03)
        phase = rng.uniform(0, 2 * math.pi)
        amplitude = rng.uniform(0.15, 0.45)
        mirror = rng.random() if view == "side" else None
        return cls(scale, shift_x, shift_y, phase, amplitude, mirror)


def _figure(ident: PreparedIdentity, pose: Pose, height: int, width: int,
            view: str) -> Image.Image:
    """The person on a transparent layer."""
    look = ident.look
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    unit = height * 0.86 * look.height * pose.scale  # figure height in pixels
    cx = width / 2 + pose.shift_x * width
    top = height * 0.97 - unit + pose.shift_y * height
    phase = pose.phase
    swing = math.sin(phase) * pose.amplitude
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
    if side and pose.mirror is not None and pose.mirror < 0.5:
        layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return layer


@attrs.frozen
class Occluder:
    """Something between the camera and the person: a pole, a low obstacle, a passer-by."""

    colour: tuple
    kind: int
    geometry: tuple


@attrs.frozen
class Scene:
    """Everything of one image that is neither the identity nor the camera (drawn from the
    image's stream, in the order the generator has always drawn it)."""

    camera: int
    offset: tuple[int, int]  # (y, x) crop of the camera's background
    view: str
    pose: Pose
    occluder: Occluder | None
    exposure: float  # brightness jitter of this frame
    noise: np.ndarray | None = attrs.field(eq=False)  # unit sensor noise, H x W x 3


def draw_scene(params: SynthParams, job: ImageJob) -> Scene:
    """The scene of ``job`` (its own stream; the camera's view prior picks the viewpoint)."""
    rng = random_stream(params, 4, job.identity, job.camera, job.index)
    cam = camera(params, job.camera)
    h, w = params.height, params.width
    oy, ox = int(rng.integers(0, 17)), int(rng.integers(0, 17))
    view = ("front", "back", "side")[int(rng.choice(3, p=cam.view_prior))]
    pose = Pose.draw(rng, view)
    occluder = None
    if rng.random() < (0.3 if params.style == "real" else 0.15):  # partial occlusion
        colour = tuple(int(c) for c in hsv_colour(rng, (0.0, 0.8), (0.1, 0.9))) + (255,)
        kind = int(rng.integers(3))
        geometry: tuple
        if kind == 0:  # a pole
            geometry = (rng.uniform(0.1, 0.9) * w, rng.uniform(0.06, 0.16) * w)
        elif kind == 1:  # something in front of the legs
            geometry = (rng.uniform(0.6, 0.8) * h,)
        else:  # a passer-by's blob at the side
            geometry = (rng.choice([-0.25, 0.75]) * w, rng.uniform(0.2, 0.5) * h)
        occluder = Occluder(colour, kind, geometry)
    exposure = float(rng.uniform(0.9, 1.1))
    noise = rng.standard_normal((h, w, 3), dtype=np.float32) if cam.noise > 0 else None
    return Scene(job.camera, (oy, ox), view, pose, occluder, exposure, noise)


def _draw_occluder(draw: ImageDraw.ImageDraw, occluder: Occluder, height: int, width: int,
                   fill: int | tuple[int, ...]) -> None:
    h, w = height, width
    if occluder.kind == 0:
        x, pw = occluder.geometry
        draw.rectangle((x - pw / 2, 0, x + pw / 2, h), fill=fill)
    elif occluder.kind == 1:
        (y,) = occluder.geometry
        draw.rectangle((0, y, w, h), fill=fill)
    else:
        x, y = occluder.geometry
        draw.ellipse((x, y, x + 0.5 * w, h * 1.1), fill=fill)


def paint(params: SynthParams, ident: PreparedIdentity, scene: Scene,
          cam: Camera | None = None) -> tuple[Image.Image, np.ndarray]:
    """``(image, person mask)``: ``ident`` in ``scene`` through ``cam`` (default: the
    scene's camera of ``params``; another style's camera gives the same scene in that
    style). The mask is True where the person is visible (not occluded)."""
    cam = cam if cam is not None else camera(params, scene.camera)
    h, w = params.height, params.width
    oy, ox = scene.offset
    background = cam.background[oy:oy + h, ox:ox + w]
    canvas = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8)).convert("RGBA")
    figure = _figure(ident, scene.pose, h, w, scene.view)
    if params.style == "synthetic":  # a flat drop shadow
        shadow = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        ImageDraw.Draw(shadow).ellipse((w * 0.25, h * 0.94, w * 0.75, h * 0.995),
                                       fill=(0, 0, 0, 70))
        canvas.alpha_composite(shadow)
    canvas.alpha_composite(figure)
    person = figure.getchannel("A")
    if scene.occluder is not None:
        _draw_occluder(ImageDraw.Draw(canvas), scene.occluder, h, w, scene.occluder.colour)
        _draw_occluder(ImageDraw.Draw(person), scene.occluder, h, w, 0)
    arr = np.asarray(canvas.convert("RGB"), dtype=np.float32)
    gain = np.asarray(cam.gain, dtype=np.float32) * np.float32(scene.exposure)
    mean = np.float32(arr.mean())
    arr = (arr - mean) * np.float32(cam.contrast) + mean
    arr = arr * gain + np.float32(cam.offset)
    if cam.noise > 0 and scene.noise is not None:
        arr += scene.noise * np.float32(cam.noise)
    image = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    if cam.blur > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(cam.blur * h / 128))
    return image, np.asarray(person) > 0


def render(params: SynthParams, ident: PreparedIdentity, job: ImageJob) -> Image.Image:
    """Render one image (RGB) of ``job``; pure function of its arguments."""
    return paint(params, ident, draw_scene(params, job))[0]

"""Synthetic identities: each one's appearance and its UV-style texture map.

The texture (256x256, layout ``REGIONS``) is painted once per identity and is what the
renderer maps onto the figure's parts, so image/texture pairs exist as in SAN's PIT data.
"""

from __future__ import annotations

import attrs
import numpy as np
from PIL import Image, ImageDraw

from reidcore.data.synth_plan import SynthParams, random_stream

TEXTURE_SIZE = 256

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


_SKIN = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 134, 95],
                  [161, 102, 68], [112, 72, 48], [80, 52, 36]], dtype=np.float32)
_HAIR = np.array([[20, 16, 14], [60, 40, 25], [110, 75, 40], [200, 170, 110], [150, 150, 150],
                  [140, 60, 30], [40, 30, 30]], dtype=np.float32)


def hsv_colour(rng: np.random.Generator, sat: tuple[float, float] = (0.0, 1.0),
               val: tuple[float, float] = (0.1, 1.0)) -> np.ndarray:
    """A random RGB colour (0..255) with saturation and value drawn from the ranges."""
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
    """What an identity wears and how it is built (colours are RGB 0..255)."""

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
    """The identity's look, drawn from its own stream (the style is in the key)."""
    rng = random_stream(params, 2, identity)
    colour = lambda *a: tuple(float(x) for x in hsv_colour(rng, *a))  # noqa: E731
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


class PreparedIdentity:
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

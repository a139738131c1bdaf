"""Decoding an image file to 8-bit RGB, whatever its PIL mode (no torch).

``Image.convert("RGB")`` clips instead of scaling: a 16-bit grayscale PNG (mode ``I;16``,
values up to 65535) becomes all white. Here 16-bit and 32-bit integer images are scaled to
8 bits, the 8-bit modes PIL converts correctly are converted, and a mode without a defined
range (``F``: floating point) or without a conversion is refused by name, so a data set
never trains on images that silently lost their content.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from reidcore.errors import ReidError

CONVERTIBLE_MODES = frozenset({"1", "L", "P", "RGB", "RGBA", "RGBX", "RGBa", "LA", "PA",
                               "CMYK", "YCbCr", "LAB", "HSV"})
"""Modes whose 8-bit values ``convert("RGB")`` maps correctly (alpha is dropped)."""
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


class CorruptImageError(ReidError):
    """An image file that cannot be decoded."""


class UnsupportedImageModeError(CorruptImageError):
    """An image whose pixel format has no defined conversion to 8-bit RGB."""


def _scaled_to_8_bits(image: Image.Image, path: str) -> Image.Image:
    """``I;16*`` and ``I`` (16-bit data as some PIL versions decode it) as 8-bit grey."""
    values = np.asarray(image)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise UnsupportedImageModeError(
            f"cannot read image {path}: mode {image.mode} with values {values.min()}.."
            f"{values.max()} outside the 16-bit range 0..65535; convert it to 8-bit RGB")
    grey = (values.astype(np.uint32) * 255 + 32767) // 65535  # 65535 -> 255, rounded
    return Image.fromarray(grey.astype(np.uint8), mode="L").convert("RGB")


def to_rgb(image: Image.Image, path: str = "<image>") -> Image.Image:
    """``image`` as 8-bit RGB, scaled from 16 bits when needed; other modes are refused
    with a :class:`UnsupportedImageModeError` naming the file and the mode."""
    mode = image.mode
    if mode in CONVERTIBLE_MODES:
        return image.convert("RGB")
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        return _scaled_to_8_bits(image, path)
    raise UnsupportedImageModeError(
        f"cannot read image {path}: PIL mode '{mode}' has no defined conversion to 8-bit "
        f"RGB (supported: {', '.join(sorted(CONVERTIBLE_MODES))}, 16-bit grey "
        f"{', '.join(sorted(SIXTEEN_BIT_MODES))}); convert the file to 8-bit RGB")


def open_image(path: str) -> Image.Image:
    """Decode an image file as 8-bit RGB; an unreadable file is a ReidError naming it."""
    try:
        with Image.open(path) as image:
            return to_rgb(image, str(path))
    except FileNotFoundError:
        raise CorruptImageError(f"image file not found: {path}") from None
    except CorruptImageError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise CorruptImageError(f"cannot read image {path}: {exc}") from None

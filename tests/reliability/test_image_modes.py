"""Item 10: images of any PIL mode are converted to 8-bit RGB correctly or refused by name.

``convert("RGB")`` clips a 16-bit grey image (values up to 65535) to white; the expected
values below are hand-scaled: 16-bit v -> round(v * 255 / 65535)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from reidcore.data.check import check_image
from reidcore.data.imageio import UnsupportedImageModeError, open_image
from reidcore.data.loaders import CorruptImageError


def _grey16(path, values):
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)
    with Image.open(path) as image:
        assert image.mode in ("I;16", "I")  # what PIL decodes a 16-bit grey PNG as
    return path


def test_a_16_bit_grey_png_keeps_its_content(tmp_path):
    path = _grey16(tmp_path / "grey16.png", [[0, 257, 32768], [65535, 1000, 12850]])
    pixels = np.asarray(open_image(str(path)))
    assert pixels.dtype == np.uint8 and pixels.shape == (2, 3, 3)
    # 0 -> 0, 257 -> 1, 32768 -> 127.5 -> 128, 65535 -> 255, 1000 -> 3.9 -> 4, 12850 -> 50
    assert pixels[..., 0].tolist() == [[0, 1, 128], [255, 4, 50]]
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "1", "CMYK"])
def test_8_bit_modes_convert_as_pil_does(tmp_path, mode):
    image = Image.fromarray(np.array([[[200, 10, 30], [0, 255, 90]]], np.uint8)).convert(mode)
    path = tmp_path / f"image.{'tif' if mode == 'CMYK' else 'png'}"  # lossless, keeps mode
    image.save(path)
    pixels = np.asarray(open_image(str(path)))
    assert pixels.dtype == np.uint8 and pixels.shape == (1, 2, 3)
    assert np.array_equal(pixels, np.asarray(image.convert("RGB")))


def test_a_float_image_is_refused_by_mode_and_path(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(path)
    with pytest.raises(UnsupportedImageModeError) as info:
        open_image(str(path))
    assert isinstance(info.value, CorruptImageError)  # loaders report it as before
    assert str(path) in str(info.value) and "mode 'F'" in str(info.value)


def test_reid_data_check_reports_a_mode_it_cannot_read(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(path)
    for decode in (True, False):
        problem = check_image(str(path), decode=decode)
        assert problem is not None and "mode 'F'" in problem
    assert check_image(str(_grey16(tmp_path / "ok.png", [[1, 2]]))) is None

"""Issue 25, item 8: the labels CSV of ``reid extract --labels``: an image listed twice is
refused naming both lines, a UTF-8 byte-order mark and spaces after the commas of the header
are accepted, and a camid below the camera base (which would become -1) is warned about."""

from __future__ import annotations

import pytest

from reidcore.data.labels import labels_from_csv
from reidcore.errors import ReidError


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    paths = [folder / f"person{i}.jpg" for i in range(2)]
    for path in paths:
        path.write_bytes(b"")
    return paths


def test_an_image_listed_twice_is_refused_naming_both_lines(tmp_path, images):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,pid\nperson0.jpg,1\nperson1.jpg,2\n./person0.jpg,3\n")
    with pytest.raises(ReidError) as info:
        labels_from_csv(csv, images, images[0].parent)
    assert str(info.value) == (f"{csv}: image ./person0.jpg is listed twice, on line 2 and "
                               f"line 4; keep one row per image")


def test_a_byte_order_mark_and_spaces_after_commas_are_accepted(tmp_path, images):
    csv = tmp_path / "labels.csv"
    csv.write_bytes("\ufeffpath, pid, camid\nperson0.jpg, 7, 1\nperson1.jpg, 8, 2\n"
                    .encode("utf-8"))
    labels = labels_from_csv(csv, images, images[0].parent)
    assert labels.pids.tolist() == [7, 8] and labels.camids.tolist() == [0, 1]
    assert labels.warnings == ()


def test_a_camid_below_the_camera_base_is_warned_about(tmp_path, images):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,pid,camid\nperson0.jpg,7,0\nperson1.jpg,8,1\n")
    labels = labels_from_csv(csv, images, images[0].parent)
    assert labels.camids.tolist() == [-1, 0]
    assert labels.warnings == (
        f"{csv}: camera ids are counted from --camera-base 1, but line 2: camid 0 is below "
        f"it (stored as a negative camid); pass --camera-base 0 if your cameras are "
        f"numbered from 0",)
    assert labels_from_csv(csv, images, images[0].parent, camera_base=0).warnings == ()

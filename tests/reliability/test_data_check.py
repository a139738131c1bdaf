"""Item 9: ``reid data check synthetic --root DIR`` checks what is in DIR; it never
regenerates the data set (which made deleted and corrupt images look fine)."""

from __future__ import annotations

import json

import pytest

from reidcore.cli import main

SMALL = ["--ids", "3", "--test-ids", "2", "--distractors", "1", "--cameras", "2",
         "--images-per-camera", "2", "--size", "32x16"]


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "data"
    assert main(["data", "synth", "--out", str(out), *SMALL]) == 0
    return out


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_an_intact_folder_written_by_reid_data_synth_checks_ok(synth_dir, capsys):
    capsys.readouterr()
    assert main(["data", "check", "synthetic", "--root", str(synth_dir)]) == 0
    out = capsys.readouterr().out
    assert f"checking {synth_dir} as it is" in out and "ids=3" in out
    assert out.strip().endswith("synthetic: OK")
    assert sorted(p.name for p in synth_dir.iterdir()) == sorted(
        ["bounding_box_train", "bounding_box_test", "query", "textures", "manifest.json"])


def test_deleted_and_corrupt_images_are_reported_not_regenerated(synth_dir, tmp_path, capsys):
    data = _copy(synth_dir, tmp_path / "data")
    train = sorted((data / "bounding_box_train").iterdir())
    for path in train[:3]:
        path.unlink()
    broken = sorted((data / "bounding_box_test").iterdir())[0]
    broken.write_bytes(broken.read_bytes()[:60])  # a truncated JPEG
    (data / "textures" / "0001.png").unlink()
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    capsys.readouterr()
    assert main(["data", "check", "synthetic", "--root", str(data)]) == 1
    out = capsys.readouterr().out
    expected = json.loads((data / "manifest.json").read_text())["images"]["bounding_box_train"]
    assert f"train images: expected {expected}, found {expected - 3} (-3)" in out
    assert f"corrupt image: {broken}" in out
    assert f"corrupt image: {data / 'textures' / '0001.png'}" in out
    assert out.strip().endswith("synthetic: MISMATCH")
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before  # nothing written


def test_a_folder_without_a_data_set_is_an_error_and_stays_empty(tmp_path, capsys):
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert main(["data", "check", "synthetic", "--root", str(empty)]) != 0
    err = capsys.readouterr().err
    assert "no synthetic data set to check" in err and "nothing was generated" in err
    assert list(empty.iterdir()) == []

"""Item 12: ``reid extract`` writes identity and camera labels when the images follow a
known naming rule or a CSV gives them, so its output goes straight into ``reid eval``;
otherwise it says what ``reid eval`` needs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from reidcore.cli import main
from reidcore.errors import ReidError

SMALL = ["--ids", "2", "--test-ids", "3", "--distractors", "0", "--cameras", "2",
         "--images-per-camera", "2", "--size", "32x16"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("extract") / "data"
    assert main(["data", "synth", "--out", str(out), *SMALL]) == 0
    return out


def _extract(images: Path, out: Path, *extra: str) -> int:
    return main(["extract", "quickstart", "--images", str(images), "--out", str(out),
                 "--batch-size", "4", *extra])


def test_named_images_get_pids_and_camids_and_go_into_reid_eval(synth, tmp_path, capsys):
    assert _extract(synth / "query", tmp_path / "q.npz") == 0
    assert _extract(synth / "bounding_box_test", tmp_path / "g.npz") == 0
    out = capsys.readouterr().out
    assert "labels: pids and camids from file names (market1501 naming rule)" in out
    with np.load(tmp_path / "q.npz") as data:
        names = [Path(p).name for p in data["paths"]]
        # 0003_c2s1_000001_01.jpg: pid 3, camera 2 (0-based 1)
        assert data["pids"].tolist() == [int(n[:4]) for n in names]
        assert data["camids"].tolist() == [int(n[6]) - 1 for n in names]
    assert main(["eval", "--query", str(tmp_path / "q.npz"), "--gallery",
                 str(tmp_path / "g.npz"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"] == "market" and result["num_valid_queries"] == 6


def test_unlabelled_images_say_what_reid_eval_needs_and_a_csv_labels_them(
        synth, tmp_path, capsys):
    images = tmp_path / "plain"
    images.mkdir()
    sources = sorted((synth / "query").iterdir())[:3]
    for i, source in enumerate(sources):
        shutil.copy(source, images / f"person{i}.jpg")
    assert _extract(images, tmp_path / "none.npz") == 0
    err = capsys.readouterr().err
    assert "labels: none written (the file names follow no known naming rule)" in err
    assert "reid eval needs 'pids'" in err and "--labels FILE.csv" in err
    with np.load(tmp_path / "none.npz") as data:
        assert "pids" not in data.files
    csv = tmp_path / "labels.csv"
    csv.write_text("path,pid,camid\nperson0.jpg,7,1\nperson1.jpg,7,2\nperson2.jpg,9,1\n")
    assert _extract(images, tmp_path / "csv.npz", "--labels", str(csv)) == 0
    with np.load(tmp_path / "csv.npz") as data:
        assert data["pids"].tolist() == [7, 7, 9] and data["camids"].tolist() == [0, 1, 0]
    csv.write_text("path,pid\nperson0.jpg,7\n")
    with pytest.raises(ReidError, match="has no row for 2 of 3 images"):
        main(["--debug", "extract", "quickstart", "--images", str(images), "--out",
              str(tmp_path / "x.npz"), "--labels", str(csv)])


def test_naming_rules_of_the_published_datasets():
    from reidcore.data.labels import labels_from_names

    labels, _ = labels_from_names([Path("0001_c2_f0046182.jpg"), Path("0005_c8_f0000001.jpg")])
    assert labels.pids.tolist() == [1, 5] and labels.camids.tolist() == [1, 7]  # DukeMTMC
    labels, _ = labels_from_names([Path("0012_003_14_0303morning_0015_0.jpg")])
    assert labels.pids.tolist() == [12] and labels.camids.tolist() == [13]  # MSMT17
    labels, why = labels_from_names([Path("0001_c1s1_000001_01.jpg"), Path("x.jpg")])
    assert labels is None and "1 of 2 file names do not follow the market1501" in why

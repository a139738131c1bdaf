"""Item 11: ``reid eval`` refuses an empty query or gallery, warns when camera ids are on
one side only (the silent fall-back to the no-camera protocol doubled mAP), and every
result says which protocol and which distance produced it."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from reidcore.errors import ReidError
from reidcore.evaluation.config import RankingConfig
from reidcore.evaluation.evaluator import RankingEvaluator, evaluate_features
from tests.engine.test_eval_command import run_cli, write_npz


def _files(tmp_path, q_camids=(0, 1), g_camids=(1, 0, 0)):
    # query 0 (pid 1, camera 0): its only match at distance 0 is in camera 0 (removed by
    # the market protocol), the other one in camera 1 at distance 2.
    write_npz(tmp_path / "q.npz", [[0.0], [5.0]], [1, 2], q_camids)
    write_npz(tmp_path / "g.npz", [[2.0], [0.0], [5.0]], [1, 1, 2], g_camids)
    return ["--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz")]


@pytest.mark.parametrize("side", ["query", "gallery"])
def test_an_empty_set_is_refused_by_name(tmp_path, side):
    argv = _files(tmp_path)
    write_npz(tmp_path / f"{side[0]}.npz", np.zeros((0, 1)), np.zeros(0, int), np.zeros(0, int))
    with pytest.raises(ReidError, match=f"--{side} .* holds no features"):
        run_cli(argv)
    empty = np.zeros((0, 4), np.float32)
    full = np.ones((3, 4), np.float32)
    features = (empty, full) if side == "query" else (full, empty)
    with pytest.raises(ReidError, match=f"the {side} set is empty"):
        evaluate_features(*features, np.ones(len(features[0])), np.ones(len(features[1])))


def test_camera_ids_on_one_side_only_warn_and_the_protocol_is_printed(tmp_path, capsys):
    argv = _files(tmp_path, g_camids=None)
    assert run_cli([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    assert "camera ids are given for the query only, not for the gallery" in captured.err
    data = json.loads(captured.out)
    assert data["protocol"] == "no-camera" and data["distance"] == "euclidean"
    assert data["warnings"] and "no-camera protocol is used" in data["warnings"][0]
    assert data["mAP"] == pytest.approx(1.0)  # the same-camera match counts here
    assert run_cli(_files(tmp_path)) == 0  # both sides: market, the match at distance 2
    out = capsys.readouterr().out
    assert "protocol: market" in out and "distance: euclidean (the default" in out
    assert re.search(r"mAP:\s+100\.00%", out)  # queries: rank 1 both, camera-0 twin removed


def test_every_result_names_protocol_and_distance(tmp_path, capsys):
    argv = _files(tmp_path)
    assert run_cli([*argv, "--metric", "cosine", "--normalisation", "l2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["protocol"], data["distance"], data["normalisation"]) == (
        "market", "cosine", "l2")
    assert run_cli([*argv, "--metric", "cosine"]) == 0
    out = capsys.readouterr().out
    assert "protocol: market   distance: cosine\n" in out


def test_runs_describe_each_test_set_for_summary_json():
    from reidcore.engine.evaluate import describe_evaluation

    evaluator = RankingEvaluator(RankingConfig(metric="cosine", normalisation="l2", flip=True))
    sets = [SimpleNamespace(name="market", query_camids=np.zeros(2), gallery_camids=np.zeros(3)),
            SimpleNamespace(name="nocams", query_camids=None, gallery_camids=None)]
    described = describe_evaluation(evaluator, sets)
    assert described["market"]["protocol"] == "market"
    assert described["nocams"]["protocol"] == "no-camera"
    assert described["market"]["distance"] == "cosine"
    assert described["market"]["normalisation"] == "l2" and described["market"]["flip"]
    json.dumps(described)  # summary.json material
    assert describe_evaluation(object(), sets[:1]) == {"market": {"evaluator": "object"}}


def test_every_run_records_its_protocol_and_distance_in_the_summary(tmp_path):
    import json

    from reidcore.engine.runner import run_recipe
    from reidcore.plugins import get_plugins
    from tests.engine.conftest import fast_recipe_dict, resolve_dict

    raw = fast_recipe_dict(tmp_path / "data", epochs=1)
    raw["evaluate"]["metric"] = "cosine"
    run_recipe(resolve_dict(raw), get_plugins(), out=tmp_path / "run", quiet=True)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    (described,) = summary["evaluation"].values()
    assert described["protocol"] == "market" and described["distance"] == "cosine"

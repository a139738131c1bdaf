"""``reid eval`` on saved features: the command lives with the engine's commands
(reidcore.engine.commands), so that reidcore.evaluation stays free of the engine."""

import argparse
import json

import numpy as np
import pytest

from reidcore.engine.commands import add_eval_command
from reidcore.errors import ReidError
from reidcore.evaluation import pairwise_distance, rank_metrics
from tests.evaluation.test_eval_evaluator import make_sets


def write_npz(path, features, pids, camids=None):
    data = {"features": np.asarray(features, np.float32), "pids": np.asarray(pids)}
    if camids is not None:
        data["camids"] = np.asarray(camids)
    np.savez(path, **data)


def run_cli(argv):
    parser = argparse.ArgumentParser()
    add_eval_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", *argv])
    return args.func(args, None)


def test_cli_eval_json(tmp_path, capsys):
    query, gallery = make_sets(seed=5)
    write_npz(tmp_path / "q.npz", query.features, query.pids, query.camids)
    write_npz(tmp_path / "g.npz", gallery.features, gallery.pids, gallery.camids)
    code = run_cli(["--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"),
                    "--metric", "cosine", "--json", "--per-query", str(tmp_path / "pq.csv")])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    d = pairwise_distance(query.features, gallery.features, "cosine")
    expected = rank_metrics(d, query.pids, gallery.pids, query.camids, gallery.camids)
    assert data["mAP"] == pytest.approx(expected.mAP)
    assert data["cmc"] == pytest.approx(expected.cmc.tolist())
    assert data["num_valid_queries"] == expected.num_valid_queries
    assert {"mINP", "rank1", "num_skipped_queries"} <= set(data)
    assert (tmp_path / "pq.csv").is_file()
    code = run_cli(["--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"),
                    "--rerank", "--k1", "5", "--k2", "2"])
    assert code == 0 and "re-ranked" in capsys.readouterr().out


def test_cli_without_camids_uses_no_camera_and_reports_errors(tmp_path, capsys):
    write_npz(tmp_path / "q.npz", [[0.0], [1.0]], [1, 2])
    write_npz(tmp_path / "g.npz", [[0.1], [0.9], [3.0]], [1, 2, 3])
    assert run_cli(["--query", str(tmp_path / "q.npz"), "--gallery",
                    str(tmp_path / "g.npz")]) == 0
    out = capsys.readouterr().out
    assert "no-camera" in out and "100.00%" in out
    np.savez(tmp_path / "bad.npz", feats=np.ones((2, 2)))
    with pytest.raises(ReidError, match="no 'features' array"):
        run_cli(["--query", str(tmp_path / "bad.npz"), "--gallery", str(tmp_path / "g.npz")])
    with pytest.raises(ReidError, match="no such features file"):
        run_cli(["--query", str(tmp_path / "none.npz"), "--gallery", str(tmp_path / "g.npz")])
    with pytest.raises(ReidError, match="needs camera ids"):
        run_cli(["--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"),
                 "--protocol", "market"])

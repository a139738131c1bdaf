"""``reid export`` of a trained run: the ONNX file's embeddings match PyTorch's on the run's
test images, ``reid eval --run model.onnx`` reproduces the run's own metrics and
``reid extract model.onnx`` its features; bad input gets a clear error."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from reidcore.errors import ReidError
from reidcore.plugins import get_plugins
from reidcore.testing import reid_cli, run_recipe
from tests.engine.conftest import fast_recipe_dict, resolve_dict

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-run")
    raw = fast_recipe_dict(root / "data", epochs=1)
    raw["evaluate"].update(flip=True, normalisation="l2")
    run_recipe(resolve_dict(raw), root / "run")
    return root / "run"


def test_export_then_eval_and_extract_the_onnx_file(trained_run, tmp_path, capsys):
    model = tmp_path / "model.onnx"
    assert reid_cli("export", trained_run, "--onnx", model, "--parity-images", "8") == 0
    printed = capsys.readouterr().out
    assert "flip on, l2 normalisation on" in printed
    difference = float(printed.split("max abs difference ")[1].split(",")[0])
    assert difference <= 1e-4
    assert "top-4 ranking agreement 100.0%" in printed

    assert reid_cli("eval", "--run", model, "--json", "--bootstrap", "0") == 0
    onnx_metrics = json.loads(capsys.readouterr().out)
    assert reid_cli("eval", "--run", trained_run, "--json", "--bootstrap", "0") == 0
    torch_metrics = json.loads(capsys.readouterr().out)
    for key in ("synthetic/mAP", "synthetic/rank1", "synthetic/mINP"):
        assert onnx_metrics[key] == pytest.approx(torch_metrics[key], abs=1e-6), key

    images = trained_run.parent / "data"
    for source, out in ((model, tmp_path / "onnx.npz"), (trained_run, tmp_path / "torch.npz")):
        assert reid_cli("extract", source, "--images", images, "--out", out,
                        "--labels", "none") == 0
    from_onnx, from_torch = np.load(tmp_path / "onnx.npz"), np.load(tmp_path / "torch.npz")
    assert (from_onnx["paths"] == from_torch["paths"]).all()
    # the file is l2-normalised inside; the run's extractor leaves that to the evaluator
    reference = from_torch["features"] / np.linalg.norm(from_torch["features"], axis=1,
                                                         keepdims=True)
    assert np.abs(from_onnx["features"] - reference).max() <= 1e-4


def test_export_without_flip_and_normalisation(trained_run, tmp_path):
    from reidcore.export.run_export import export_onnx

    result = export_onnx(trained_run, tmp_path / "plain.onnx", plugins=get_plugins(),
                         flip=False, normalise=False, parity_images=4)
    assert (result.flip, result.normalise) == (False, False)
    assert result.parity.max_abs_diff <= 1e-4
    assert (tmp_path / "plain.onnx").is_file()


def test_bad_input_is_refused_clearly(trained_run, tmp_path, monkeypatch, capsys):
    from reidcore.export.run_export import export_onnx

    with pytest.raises(ReidError, match=r"is not a run directory \(no recipe.toml\): it does "
                                        r"not exist"):
        export_onnx(tmp_path / "missing-run", tmp_path / "m.onnx", plugins=get_plugins())
    not_ours = tmp_path / "other.onnx"
    not_ours.write_bytes(b"not a model")
    for args, expected in [
            (("export", trained_run, "--onnx", tmp_path / "m.pt"),
             "expected a file name ending in .onnx"),
            (("eval", "--run", tmp_path / "missing.onnx"), "no such ONNX file"),
            (("eval", "--run", not_ours), "onnxruntime cannot load"),
            (("eval", "--run", not_ours, "--set", "evaluate.flip=false"),
             "flip averaging is inside")]:
        assert reid_cli(*args) != 0
        assert expected in capsys.readouterr().err

    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the extra were not installed
    with pytest.raises(ReidError, match=r"needs the 'onnx' package.*reidcore\[export\]"):
        export_onnx(trained_run, tmp_path / "m.onnx", plugins=get_plugins())
    assert not (tmp_path / "m.onnx").exists()

"""MLflow as an optional tracker (``train.mlflow``): a run recorded in a local store, read
back through MLflow's own client; resumed runs go on in the same MLflow run."""

from __future__ import annotations

import json

import pytest

from reidcore.errors import RecipeError
from reidcore.tracking import flatten, mlflow_problems
from tests.engine.conftest import fast_recipe_dict, resolve_dict

mlflow = pytest.importorskip("mlflow", reason="MLflow is the optional extra reidcore[mlflow]")


def test_flatten_gives_dotted_params():
    params = flatten({"seed": 3, "train": {"lr": 0.001, "freeze": ["backbone"]},
                      "losses": [{"name": "triplet", "margin": 0.3}], "name": "tiny"})
    assert params == {"seed": "3", "train.lr": "0.001", "train.freeze": '["backbone"]',
                      "losses.0.name": "triplet", "losses.0.margin": "0.3", "name": "tiny"}


def test_a_run_is_recorded_in_a_local_store_and_resumes_into_the_same_mlflow_run(
        engine_cache, tmp_path):
    from mlflow.tracking import MlflowClient

    from reidcore.engine.runner import run_recipe
    from reidcore.plugins import get_plugins

    raw = fast_recipe_dict(engine_cache, epochs=1)
    raw["train"]["mlflow"] = "local"
    run_dir = tmp_path / "runs" / "tiny"
    summary = run_recipe(resolve_dict(raw), get_plugins(), out=run_dir, quiet=True)

    recorded = json.loads((run_dir / "mlflow.json").read_text())
    assert recorded["tracking_uri"] == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    client = MlflowClient(recorded["tracking_uri"])
    run = client.get_run(recorded["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny"
    assert run.data.params["seed"] == "3" and run.data.params["train.mlflow"] == "local"
    assert run.data.metrics["eval/synthetic/mAP"] == pytest.approx(
        summary["metrics"]["synthetic"]["mAP"])
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"recipe.toml", "manifest.json", "summary.json", "metrics.jsonl"} <= artifacts
    assert (tmp_path / "runs" / "mlartifacts").is_dir()  # beside the run, no server

    raw["train"]["epochs"] = 2
    run_recipe(resolve_dict(raw), get_plugins(), out=run_dir, resume=True, quiet=True,
               allow_recipe_change=True)
    assert json.loads((run_dir / "mlflow.json").read_text())["run_id"] == recorded["run_id"]
    history = client.get_metric_history(recorded["run_id"], "eval/synthetic/mAP")
    assert len(history) == 2 and client.get_run(recorded["run_id"]).info.status == "FINISHED"


def test_mlflow_setting_without_mlflow_is_refused_at_check(engine_cache, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert "reidcore[mlflow]" in mlflow_problems("local")[0].message
    raw = fast_recipe_dict(engine_cache)
    raw["train"]["mlflow"] = "local"
    with pytest.raises(RecipeError, match=r"\$\.train\.mlflow.*not installed"):
        resolve_dict(raw)

"""A run's evaluation outputs: TPR@FPR and bootstrap intervals in summary.json and the
printed table, and the per-query file in the run directory."""

import json

import numpy as np

from reidcore.engine.logging import summary_table
from reidcore.engine.runner import run_recipe
from reidcore.plugins import get_plugins
from tests.engine.conftest import fast_recipe_dict, resolve_dict


def test_summary_and_per_query_file(tmp_path):
    recipe = resolve_dict(fast_recipe_dict(tmp_path / "data", epochs=1))
    run_recipe(recipe, get_plugins(), out=tmp_path / "run", recipe_name="tiny", quiet=True)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    metrics = summary["metrics"]["synthetic"]
    assert {"tpr_at_fpr_1e-4", "tpr_at_fpr_1e-3", "tpr_at_fpr_1e-2"} <= set(metrics)
    assert metrics["mAP_ci_low"] <= metrics["mAP"] <= metrics["mAP_ci_high"]
    with np.load(tmp_path / "run" / "per_query_synthetic.npz") as per_query:
        valid = per_query["valid"]
        assert abs(float(np.mean(per_query["ap"][valid])) - metrics["mAP"]) < 1e-6
        assert len(per_query["paths"]) == len(valid)
    table = summary_table({f"synthetic/{k}": v for k, v in metrics.items()}, ["synthetic"])
    assert "bootstrap intervals mAP [" in table and "TPR@FPR=1e-4" in table

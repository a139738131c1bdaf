"""Two CPU processes (gloo DistributedDataParallel) against one process with the same global
batch: with uniform sampling the two ranks' batches are exactly the halves of the single
process's batch, so with a per-image loss (cross-entropy) and no augmentation the runs
differ only through BatchNorm statistics (per-rank halves vs the whole batch)."""

from __future__ import annotations

import json

import pytest

from reidcore.engine import checkpoint as ckpt
from reidcore.engine.extract import evaluate_run
from reidcore.engine.runner import run_recipe
from reidcore.plugins import get_plugins
from tests.engine.conftest import resolve_dict, tiny_recipe_dict


def ddp_recipe(root, instances: int):
    raw = tiny_recipe_dict(root, epochs=2)
    raw["losses"] = [{"name": "cross_entropy", "label_smoothing": 0.1}]
    raw["loader"].update({"sampler": "random", "identities": 4, "instances": instances,
                          "flip": 0.0, "pad": 0, "erasing": 0.0})
    raw["train"].update({"eval_every": 2, "log_every": 1})
    return resolve_dict(raw)


def epoch_losses(run_dir):
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [line["loss"] for line in lines if line["kind"] == "epoch"]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(engine_cache, tmp_path):
    plugins = get_plugins()
    single = run_recipe(ddp_recipe(engine_cache, instances=4), plugins, out=tmp_path / "one",
                        recipe_name="ddp", quiet=True)
    double = run_recipe(ddp_recipe(engine_cache, instances=2), plugins, out=tmp_path / "two",
                        recipe_name="ddp", quiet=True, nproc=2)
    assert double["status"] == "completed" and double["steps"] == single["steps"]
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["world_size"] == 2
    one, two = epoch_losses(tmp_path / "one"), epoch_losses(tmp_path / "two")
    assert len(one) == len(two) == 2
    # same data, same initial weights, averaged gradients: the losses track each other
    assert two[0] == pytest.approx(one[0], rel=0.02)
    assert two[1] == pytest.approx(one[1], rel=0.10)
    assert two[1] < two[0]  # and it learns
    assert set(double["metrics"]["synthetic"]) == set(single["metrics"]["synthetic"])
    # each rank embedded its block of the test sets and ranked all the queries against its
    # block of the gallery: the same metrics as one process evaluating the same weights
    again = evaluate_run(tmp_path / "two", plugins=plugins,
                         checkpoint=ckpt.latest(tmp_path / "two" / "checkpoints"))
    for key, value in double["metrics"]["synthetic"].items():
        assert again[f"synthetic/{key}"] == pytest.approx(value, rel=1e-6, abs=1e-9), key

"""The run directory's one owner (issue 20, item 6) and the non-finite policy, without a run."""

from __future__ import annotations

import json

import pytest
import torch

from reidcore.engine import checkpoint as ckpt
from reidcore.engine.nonfinite import NonFiniteLossError, NonFinitePolicy
from reidcore.engine.rundir import RunDirectory
from reidcore.engine.step_metrics import StepMetrics
from reidcore.errors import ReidError


def test_the_layout_is_named_in_one_place(tmp_path):
    run = RunDirectory(tmp_path / "runs" / "student")
    assert run.recipe_file == run.path / "recipe.toml"
    assert run.manifest_file.name == "manifest.json" and run.summary_file.name == "summary.json"
    assert run.metrics_file.name == "metrics.jsonl" and run.lock_file.name == "run.lock"
    assert run.epoch_checkpoint(5) == run.path / "checkpoints" / "epoch-0005.pt"
    assert run.best_checkpoint == run.path / "checkpoints" / "best.pt"
    assert run.ranked_picture("market") == run.path / "ranked_market.png"
    assert run.image_file("swap", 100) == run.path / "images" / "swap" / "step-0000100.png"
    assert run.requirement("teacher").path == tmp_path / "runs" / "student-teacher"
    assert str(run) == str(run.path)


def test_completed_reads_the_summary(tmp_path):
    run = RunDirectory(tmp_path)
    assert not run.completed
    run.summary_file.write_text(json.dumps({"status": "failed"}))
    assert not run.completed
    run.summary_file.write_text("{not json")
    assert not run.completed
    run.summary_file.write_text(json.dumps({"status": "completed"}))
    assert run.completed


def test_the_latest_good_checkpoint_sets_damaged_ones_aside(tmp_path, capsys):
    run = RunDirectory(tmp_path)
    assert run.latest_good_checkpoint() is None and not run.started
    payload = {"format": ckpt.FORMAT, "epoch": 1, "step": 2, "modules": {}}
    run.save_checkpoint(1, payload, best=True, keep_last=3, previous=None)
    run.save_checkpoint(2, {**payload, "epoch": 2}, best=False, keep_last=3, previous=None)
    run.epoch_checkpoint(2).write_bytes(b"damaged")
    assert run.started and run.checkpoint("best") == run.best_checkpoint
    assert run.best_or_latest_checkpoint() == run.best_checkpoint

    path, data = run.latest_good_checkpoint()
    assert path == run.epoch_checkpoint(1) and data["epoch"] == 1
    assert (tmp_path / "checkpoints" / "epoch-0002.pt.damaged").is_file()
    assert "using the previous good checkpoint" in capsys.readouterr().out
    run.epoch_checkpoint(1).write_bytes(b"damaged too")
    with pytest.raises(ReidError, match="can be loaded"):
        run.latest_good_checkpoint(set_aside=False)
    assert run.epoch_checkpoint(1).is_file()  # another rank reads, never renames


def test_the_policy_skips_and_restores_statistics_or_stops_naming_the_step():
    buffer = torch.zeros(2)
    skipping = NonFinitePolicy("skip", [buffer], distributed=False, log=lambda _: None)
    sums = StepMetrics()
    skipping.start_epoch()
    skipping.before_step()
    buffer.fill_(3.0)  # the step moved the statistics, then its loss was NaN
    skipping.after_step({"loss": torch.tensor(float("nan"))}, sums, step=1, epoch=0,
                        index=1, steps=2, read=True)
    assert torch.equal(buffer, torch.zeros(2)) and skipping.skipped_total == 1
    assert skipping.epoch_means(sums, lambda means: means)["nonfinite_steps"] == 1.0

    stopping = NonFinitePolicy("stop", [], distributed=False, log=lambda _: None)
    stopping.start_epoch()
    sums = StepMetrics()
    stopping.after_step({"loss": torch.tensor(float("inf"))}, sums, step=7, epoch=1,
                        index=3, steps=4, read=False)  # not read yet: no sync, no stop
    with pytest.raises(NonFiniteLossError, match=r"stopped at step 7 \(epoch 2, batch 3 of 4\)"
                       r".*no checkpoint has been saved yet"):
        stopping.after_step({"loss": torch.tensor(1.0)}, sums, step=8, epoch=1, index=4,
                            steps=4, read=True)

"""Issue 16, item 4: a non-finite loss stops the run at once (step, loss terms, last good
checkpoint named, nothing saved after it), or with train.nonfinite = "skip" the step is
skipped (no optimizer step, BatchNorm statistics restored), counted and logged."""

from __future__ import annotations

import json

import pytest
import torch

from reidcore.engine import checkpoint as ckpt
from reidcore.engine.context import Precision
from reidcore.engine.runner import run_recipe
from reidcore.errors import ReidError
from reidcore.methods.baseline import Baseline
from reidcore.plugins import get_plugins
from tests.engine.conftest import fast_recipe_dict, resolve_dict


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def poison_at(monkeypatch, step: int, what: str) -> None:
    """Make the step numbered ``step`` (0-based) non-finite: NaN ``weights`` (every later
    step is non-finite too) or a NaN ``batch`` (that step only)."""
    original = Baseline.training_step

    def training_step(self, batch, index, optim):
        if index == step:
            if what == "weights":
                with torch.no_grad():
                    next(self.network.backbone.parameters()).fill_(float("nan"))
            else:
                batch = {**batch, "images": torch.full_like(batch["images"], float("nan"))}
        return original(self, batch, index, optim)

    monkeypatch.setattr(Baseline, "training_step", training_step)


def test_a_nonfinite_loss_stops_the_run_naming_step_terms_and_checkpoint(cache, tmp_path,
                                                                         monkeypatch):
    poison_at(monkeypatch, 2, "weights")  # the first step of epoch 2
    run_dir = tmp_path / "run"
    recipe = resolve_dict(fast_recipe_dict(cache, epochs=3, steps=2))
    with pytest.raises(ReidError) as info:
        run_recipe(recipe, get_plugins(), out=run_dir, quiet=True)
    message = str(info.value)
    assert "step 3 (epoch 2, batch 1 of 2) with a non-finite loss" in message
    assert "loss nan" in message and "loss/cross_entropy nan" in message
    assert "loss/triplet" in message
    assert f"the last good checkpoint is {run_dir / 'checkpoints' / 'epoch-0001.pt'}" in message
    assert 'train.nonfinite = "skip"' in message
    assert ckpt.latest(run_dir / "checkpoints").name == "epoch-0001.pt"  # no NaN checkpoint
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "non-finite loss" in summary["error"]


def test_skip_mode_skips_counts_and_logs_nonfinite_steps(cache, tmp_path, monkeypatch, capsys):
    poison_at(monkeypatch, 2, "batch")
    run_dir = tmp_path / "run"
    recipe = resolve_dict(fast_recipe_dict(cache, epochs=2, steps=2, nonfinite="skip"))
    summary = run_recipe(recipe, get_plugins(), out=run_dir, quiet=False)
    out = capsys.readouterr().out
    assert "warning: skipped step 3 (epoch 2, batch 1 of 2) with a non-finite loss" in out
    assert "skipped 1 non-finite steps" in out
    assert summary["status"] == "completed" and summary["nonfinite_steps"] == 1
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
              if '"kind": "epoch"' in line]
    assert [e["nonfinite_steps"] for e in epochs] == [0.0, 1.0]
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in epochs)
    state = ckpt.read(run_dir / "checkpoints" / "epoch-0002.pt")["modules"]["network"]
    for key, value in state.items():  # weights and BatchNorm statistics stayed finite
        if value.is_floating_point():
            assert torch.isfinite(value).all(), key


def test_precision_skips_an_optimizer_step_with_nonfinite_gradients():
    layer = torch.nn.Linear(3, 1)
    before = layer.weight.detach().clone()
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    skipping = Precision(skip_nonfinite=True)
    (layer(torch.tensor([[1.0, float("inf"), 0.0]])).sum() * 0).backward()  # nan gradients
    skipping.step(optimizer)
    assert skipping.skipped == 1 and torch.equal(layer.weight, before)
    optimizer.zero_grad()
    layer(torch.ones(1, 3)).sum().backward()
    skipping.step(optimizer)
    assert skipping.skipped == 1 and not torch.equal(layer.weight, before)

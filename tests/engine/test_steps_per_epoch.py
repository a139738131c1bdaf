"""``train.steps_per_epoch``: epochs of a fixed number of steps (iteration-based training),
honoured by the samplers, the loop, the clock and the LR schedule."""

from __future__ import annotations

import json

import pytest
import torch

from reidcore.data.samplers import PKSampler, RandomBatchSampler
from reidcore.engine import checkpoint as ckpt
from reidcore.engine.optim import lr_factor
from reidcore.engine.runner import run_recipe
from reidcore.plugins import get_plugins
from tests.engine.conftest import resolve_dict, tiny_recipe_dict
from tests.engine.test_runs import Recorder, run_with


def test_pk_sampler_draws_further_passes_to_fill_a_fixed_epoch():
    pids = [i // 4 for i in range(24)]  # 6 identities x 4 images: one pass = 3 batches
    one_pass = PKSampler(pids, 2, 4, seed=1)
    assert len(one_pass) == 3
    sampler = PKSampler(pids, 2, 4, seed=1, steps=7)
    sampler.set_epoch(2)
    batches = list(sampler)
    assert len(sampler) == len(batches) == 7
    assert all(len(b) == 8 and len({pids[i] for i in b}) == 2 for b in batches)
    sampler.set_epoch(2)
    assert list(sampler) == batches  # deterministic per (seed, epoch): a resumed epoch
    sampler.set_epoch(3)
    assert list(sampler) != batches
    shard = PKSampler(pids, 2, 4, seed=1, rank=1, world_size=2, steps=7)
    shard.set_epoch(2)
    assert len(shard) == 7 and len(list(shard)) == 7  # 7 steps per rank


def test_random_sampler_with_steps_covers_whole_passes_first():
    sampler = RandomBatchSampler(10, 3, seed=0, steps=5)  # 3 batches a pass
    batches = list(sampler)
    assert len(batches) == 5
    assert sorted(i for b in batches[:3] for i in b) == sorted(
        set(i for b in batches[:3] for i in b))  # no image twice within one pass
    with pytest.raises(ValueError, match="steps per epoch must be >= 0"):
        RandomBatchSampler(10, 3, steps=-1)


@pytest.mark.slow
def test_a_run_has_epochs_of_exactly_the_steps_asked_and_lrs_follow_them(engine_cache,
                                                                        tmp_path):
    raw = tiny_recipe_dict(engine_cache, epochs=2, steps_per_epoch=5, log_every=1,
                           schedule_by="step")
    recipe = resolve_dict(raw)
    summary = run_recipe(recipe, get_plugins(), out=tmp_path / "run", quiet=True)
    assert summary["steps"] == 10
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["steps_per_epoch"] == 5
    records = [json.loads(line) for line in
               (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr/main"] for r in records if r["kind"] == "train"]
    assert len(lrs) == 10
    # logged after step s (1-based): the LR set for the next step, at position s / 5
    expected = [recipe.train.lr * lr_factor(s / 5, recipe.train) for s in range(1, 11)]
    assert lrs == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
def test_a_run_of_fixed_epochs_killed_mid_epoch_resumes_to_the_same_weights(engine_cache,
                                                                           tmp_path):
    """Epochs longer than one pass of the sampler (9 steps; the tiny data fill 6 P x K
    batches): a run killed in its second epoch, after the sampler started its second pass,
    resumes from the first epoch's checkpoint and ends where the uninterrupted run ends."""
    raw = tiny_recipe_dict(engine_cache, epochs=2, steps_per_epoch=9)
    recipe = resolve_dict(raw)
    full = run_with(Recorder(), recipe, tmp_path / "full")
    assert full["steps"] == 18
    with pytest.raises(KeyboardInterrupt):
        run_with(Recorder(kill_at=9 + 8), recipe, tmp_path / "resumed")
    recorder = Recorder()
    resumed = run_with(recorder, recipe, tmp_path / "resumed", resume=True)
    steps = [value for kind, value in recorder.events if kind == "step"]
    assert steps == list(range(10, 19))  # the second epoch again, whole
    assert resumed["metrics"] == full["metrics"]
    first, second = (ckpt.read(ckpt.latest(tmp_path / name / "checkpoints"))["modules"]
                     for name in ("full", "resumed"))
    for module in first:
        for key in first[module]:
            assert torch.equal(first[module][key], second[module][key]), f"{module}.{key}"

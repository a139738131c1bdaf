"""``flipreid`` in two CPU processes (gloo DistributedDataParallel) through its phase switch:
in the first epoch the backbone is frozen and gets no gradient, which DDP accepts only when
the network is wrapped with ``find_unused_parameters``; the second epoch trains everything
with the first phase's Adam state carried over. The packaged synthetic recipe, made tiny."""

import json
import math

import pytest
import torch
from reidcore.testing import run_recipe


def tiny_overrides(root):
    data = ["ids=8", "test_ids=4", "distractors=2", "cameras=2", "images_per_camera=2",
            "size=64x32", f"root={root}"]
    return [
        *(f"data.{role}[0].{option}" for role in ("source", "test") for option in data),
        "method.frozen_epochs=1", "method.warmup_epochs=1",
        "loader.identities=2", "loader.instances=2",
        "train.epochs=2", "train.eval_every=2", "train.log_every=1",
    ]


@pytest.mark.slow
def test_two_process_run_through_the_frozen_phase(tmp_path):
    summary = run_recipe("flipreid-synthetic", tmp_path / "run",
                         overrides=tiny_overrides(tmp_path / "data"), name="ddp", nproc=2)
    assert summary["status"] == "completed"
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["world_size"] == 2
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [line for line in lines if line["kind"] == "epoch"]
    assert len(epochs) == 2  # epoch 0 frozen, epoch 1 the full network
    for epoch in epochs:
        assert all(math.isfinite(epoch[k]) for k in ("loss", "loss/triplet",
                                                     "loss/cross_entropy", "loss/flipping"))
    metrics = summary["metrics"]["synthetic"]
    assert {"mAP", "rank1"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    # after epoch 1 only the new layers had trained ("main" untouched); after epoch 2 the
    # backbone had moved too
    frozen, full = (torch.load(tmp_path / "run" / "checkpoints" / f"epoch-{e:04d}.pt",
                               weights_only=True) for e in (1, 2))
    assert frozen["optimizers"]["frozen"]["state"] and not frozen["optimizers"]["main"]["state"]
    assert full["optimizers"]["main"]["state"] and not full["optimizers"]["frozen"]["state"]
    # the Adam step count is shared across the switch: every parameter, the backbone's
    # included, ends epoch 2 at the steps of both epochs (equal lengths)
    steps_a = {float(s["step"]) for s in frozen["optimizers"]["frozen"]["state"].values()}
    steps_b = {float(s["step"]) for s in full["optimizers"]["main"]["state"].values()}
    assert len(steps_a) == 1 and steps_b == {2 * steps_a.pop()}
    trunk = [k for k, v in full["modules"]["network"].items()
             if k.startswith("trunk.") and v.is_floating_point() and "running" not in k]
    assert trunk and any(not torch.equal(frozen["modules"]["network"][k],
                                         full["modules"]["network"][k]) for k in trunk)
    for state in (frozen, full):
        assert all(torch.isfinite(v).all() for v in state["modules"]["network"].values()
                   if v.is_floating_point())

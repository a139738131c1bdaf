"""``cut_reid`` in two CPU processes (gloo): its G and D steps call the networks' parts
directly, so it averages gradients itself (``context.sync_gradients``) instead of DDP's
forward wrapper. The tiny synthetic recipe, smallest networks, one epoch of a few steps."""

import json
import math
from pathlib import Path

import pytest
from reidcore.api import load_recipe
from reidcore.engine.runner import run_recipe
from reidcore.plugins import get_plugins

RECIPE = Path(__file__).resolve().parents[1] / "reid_plugin_cut_reid" / "recipes" / (
    "cut-reid-synthetic.toml")


def tiny_overrides(root):
    data = ["ids=8", "test_ids=4", "distractors=2", "cameras=2", "images_per_camera=3",
            f"root={root}"]
    return [
        *(f"data.{role}[0].{option}" for role in ("source", "target", "test")
          for option in data),
        "method.num_patches=16", "method.reid_width=8", "method.head_dim=16",
        "method.log_images_every=1",
        "generators.translator.ngf=8", "generators.translator.blocks=1",
        "generators.discriminator.ndf=8",
        "loader.identities=2", "loader.instances=2", "loader.target_batch_size=4",
        "train.epochs=1", "train.eval_every=1", "train.log_every=1",
    ]


@pytest.mark.slow
def test_two_process_run_completes_with_finite_metrics(tmp_path):
    plugins = get_plugins()
    _, recipe = load_recipe(RECIPE, plugins, overrides=tiny_overrides(tmp_path / "data"))
    summary = run_recipe(recipe, plugins, out=tmp_path / "run", recipe_name="ddp",
                         quiet=True, nproc=2)
    assert summary["status"] == "completed" and summary["steps"] >= 2
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["world_size"] == 2
    metrics = summary["metrics"]["synthetic"]
    assert {"mAP", "rank1"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    (epoch,) = [line for line in lines if line["kind"] == "epoch"]
    assert all(math.isfinite(epoch[k]) for k in ("loss", "loss/generator", "loss/nce",
                                                 "loss/discriminator", "loss/reid_ce"))
    # rank 0 alone writes the translation grid of the (last) epoch
    assert len(list((tmp_path / "run" / "images" / "translations").glob("*.png"))) == 1

"""End to end on CPU, one command: ``reid run dgnet-synthetic`` trains the teacher (the
core's baseline) and then DG-Net, writes swap grids, evaluates; ``reid dgnet-swap`` then
renders a grid from the trained run for any images.

Shrunk for the CI budget with recipe options (teacher 40 iterations, DG-Net 2 x 20
iterations with the warm-up ending at 20 so the teacher's terms run); the packaged recipe
trains longer."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

SHRINK = ["train.steps_per_epoch=20", "train.epochs=2", "train.eval_every=2",
          "method.warm_iter=20", "method.warm_teacher_iter=20", "method.milestones=[100]",
          "method.log_images_every=20",
          'requires.teacher.set=["train.epochs=2", "train.steps_per_epoch=20", '
          '"train.eval_every=2", "train.milestones=[100]"]']


def reid(*args, cwd):
    env = {**os.environ, "REID_PROGRESS": "0"}
    reid_cli = Path(sys.executable).with_name("reid")
    return subprocess.run([str(reid_cli), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def split_map(registry, recipe, embed):
    """mAP of ``embed`` on the recipe's synthetic test split (cosine distance)."""
    from reidcore.api import open_image, rank_metrics
    from torchvision.transforms import functional as TF

    section = recipe.data.test[0]
    splits = registry.get("dataset", section.name).create(section.config).load()

    def features(records):
        images = torch.stack([TF.normalize(TF.to_tensor(open_image(r.path)),
                                           (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
                              for r in records])
        with torch.no_grad():
            return torch.nn.functional.normalize(embed(images), dim=1).numpy()

    q, g = features(splits.query), features(splits.gallery)
    pids = [np.array([r.pid for r in rs]) for rs in (splits.query, splits.gallery)]
    cams = [np.array([r.camid for r in rs]) for rs in (splits.query, splits.gallery)]
    return float(rank_metrics(1 - q @ g.T, pids[0], pids[1], cams[0], cams[1]).mAP)


@pytest.mark.slow
def test_dgnet_synthetic_chain(tmp_path, registry):
    from reidcore.api import load_run
    from reidcore.testing import method_context

    run = tmp_path / "dgnet"
    sets = [a for item in SHRINK for a in ("--set", item)]
    done = reid("run", "dgnet-synthetic", "--out", str(run), *sets, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    # 1. the teacher was trained first, beside the run
    teacher = tmp_path / "dgnet-teacher"
    assert json.loads((teacher / "summary.json").read_text())["status"] == "completed"
    # 2. every loss logged; image reconstruction falls; the teacher terms ran after warm-up
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").open()
              if '"kind": "epoch"' in line]
    assert len(epochs) == 2
    assert epochs[-1]["loss/recon_x"] < epochs[0]["loss/recon_x"]
    assert epochs[0]["loss/teacher"] == 0 and epochs[-1]["weight/prim"] > 0
    assert epochs[-1]["loss/teacher"] > 0
    # 3. swap grids during training (PNG; TensorBoard has the same pictures)
    grids = sorted((run / "images" / "swap").glob("*.png"))
    assert [p.name for p in grids] == ["step-0000020.png", "step-0000040.png"]
    # 4. the trained Ea ranks far better than the same network untrained
    loaded = load_run(run, registry)
    raw = tomllib.loads((run / "recipe.toml").read_text())
    raw.pop("requires", None)
    spec = registry.get("method", "dgnet")
    context = method_context(spec, {**raw, "reid:num_classes": 40})
    torch.manual_seed(0)
    untrained = spec.create(context.recipe.method.config, context=context)
    for module in untrained.modules().values():
        module.eval()
    trained_map = split_map(registry, loaded.recipe, loaded.embed)
    untrained_map = split_map(registry, loaded.recipe, untrained.embed)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metrics"]["synthetic"]["mAP"] == pytest.approx(trained_map, abs=0.02)
    # measured: 21.2 vs 14.3 (random-weight features already rank the colours well)
    assert trained_map > max(untrained_map + 0.04, 1.3 * untrained_map), (trained_map,
                                                                          untrained_map)
    # 5. the swap command on the trained run, for any images
    query = [r.path for r in registry.get("dataset", "synthetic").create(
        loaded.recipe.data.test[0].config).load().query[:4]]
    out = tmp_path / "grid.png"
    done = reid("dgnet-swap", str(run), "--images", *query, "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    from PIL import Image

    assert Image.open(out).size == (5 * 32 + 6 * 2, 5 * 64 + 6 * 2)

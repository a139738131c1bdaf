"""End to end on CPU, one command: ``reid run san-synthetic`` trains SAN-PG on the
synthetic generator's image / true-texture pairs (identities disjoint from the re-ID
data), writes a pseudo texture per re-ID training image with it, trains SAN on them and
evaluates; ``reid extract`` then embeds with SA-Enc alone (v).

Shrunk for the CI budget with recipe options (20 training identities, SAN-PG 2 epochs,
SAN 1 warm-up + 2 main epochs); the packaged recipe trains longer."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SHRINK = ["data.source.0.ids=20", "data.test.0.test_ids=20", "train.epochs=3",
          "train.eval_every=3", "method.milestones=[2]", "method.log_images_every=3",
          'requires.san_pg.set=["train.epochs=2", "data.source.0.ids=20", '
          '"data.test.0.test_ids=10", "method.log_images_every=0"]']


def reid(*args, cwd):
    env = {**os.environ, "REID_PROGRESS": "0"}
    reid_cli = Path(sys.executable).with_name("reid")
    return subprocess.run([str(reid_cli), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_san_synthetic_chain(tmp_path):
    run = tmp_path / "san"
    sets = [a for item in SHRINK for a in ("--set", item)]
    done = reid("run", "san-synthetic", "--out", str(run), *sets, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    # 1. SAN-PG trained first, beside the run
    pg = tmp_path / "san-san_pg"
    assert json.loads((pg / "summary.json").read_text())["status"] == "completed"
    # 2. one pseudo texture per training image, tied to that SAN-PG run
    manifest = json.loads((run / "textures" / "manifest.json").read_text())
    textures = list((run / "textures").rglob("*.png"))
    assert manifest["complete"] and manifest["images"] == len(textures) > 200
    assert manifest["san_pg_run"] == str(pg.resolve()) and manifest["texture_size"] == [64, 64]
    # 3. SAN trained on them: every loss logged; CE, L_Rec and L_TR fall (21 steps are too
    #    few for the batch-hard triplet, which first grows as the features spread)
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").open()
              if '"kind": "epoch"' in line]
    assert len(epochs) == 3
    for key in ("loss/cross_entropy", "loss/triplet", "loss/rec", "loss/tr"):
        assert key in epochs[0]
    assert epochs[-1]["loss/cross_entropy"] < epochs[0]["loss/cross_entropy"]
    assert epochs[-1]["loss/rec"] < epochs[0]["loss/rec"]
    assert epochs[-1]["loss/tr"] < epochs[0]["loss/tr"]
    summary = json.loads((run / "summary.json").read_text())
    assert 0.0 < summary["metrics"]["synthetic"]["mAP"] <= 1.0
    assert list((run / "images" / "textures").glob("*.png"))  # image / target / decoded
    # 4. extraction uses SA-Enc alone: v (the recipe's 128-d embedding)
    images = Path(manifest["image_root"])
    out = tmp_path / "features.npz"
    done = reid("extract", str(run), "--images", str(images), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    features = np.load(out)["features"]
    assert features.shape == (len(textures), 128) and (features >= 0).all()

"""`reid run arn-synthetic` end to end, shrunk: pretraining, adaptation, evaluation."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_pretrain_adapt_evaluate(tmp_path):
    reid = str(Path(sys.executable).with_name("reid"))
    out = tmp_path / "run"
    shrink = ["--set", "requires.pretrained.set=['train.epochs=2', 'train.eval_every=2', "
              "'train.steps_per_epoch=15']",
              "--set", "train.epochs=1", "--set", "train.eval_every=1",
              "--set", "train.steps_per_epoch=12", "--set", "method.log_images_every=1"]
    subprocess.run([reid, "run", "arn-synthetic", "--out", str(out), *shrink], check=True,
                   capture_output=True, text=True)
    pretrained = json.loads((tmp_path / "run-pretrained" / "summary.json").read_text())
    adapted = json.loads((out / "summary.json").read_text())
    for summary in (pretrained, adapted):
        metrics = summary["metrics"]["synthetic"]
        assert 0.0 < metrics["mAP"] <= 1.0 and metrics["num_valid_queries"] > 0
    assert list((out / "images" / "reconstructions").glob("*.png"))
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    names = {key for row in log for key in row}
    assert {"loss/rec", "loss/dif", "loss/mmd", "loss/ctr", "loss/cls"} <= names

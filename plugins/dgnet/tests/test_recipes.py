"""Packaged recipes: paper-size parameter counts from ``reid check --build`` (meta device,
no weights) and a dgnet recipe's cross-section rules (the CPU recipe is built and run in
test_chain.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

RECIPES = Path(__file__).parents[1] / "reid_plugin_dgnet" / "recipes"


def reid(*args, cwd):
    env = {**os.environ, "REID_PROGRESS": "0"}
    reid_cli = Path(sys.executable).with_name("reid")
    return subprocess.run([str(reid_cli), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def head(classes):
    """Linear 2048->512, BN 512, Linear 512->classes."""
    return 2048 * 512 + 512 + 2 * 512 + 512 * classes + classes


def test_packaged_recipes():
    names = {p.stem for p in RECIPES.glob("*.toml")}
    assert names == {f"dgnet{t}-{d}" for t in ("", "-teacher")
                     for d in ("market1501", "dukemtmcreid", "msmt17", "synthetic",
                               "evidence-synthetic")}


def test_market_recipe_builds_at_paper_size(tmp_path):
    done = reid("check", "dgnet-market1501", "--build", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout)["modules"]
    assert head(751) == 1_435_375
    assert modules["ea"] == 23_508_032 + 2 * head(751) == 26_378_782
    assert modules["es"] == 380_544
    assert modules["decoder"] == 1_455_555 + 11_544_576
    assert modules["es"] + modules["decoder"] == 13_380_675
    assert modules["discriminator"] == 1_025_571


def test_dgnet_rules_are_reported_together(tmp_path):
    done = reid("check", "dgnet-synthetic", "--set", "loader.erasing=0.5", "--set",
                "loader.positive=false", "--set", "evaluate.flip=true", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    for text in ("loader.erasing = 0", "loader.positive = true", "flip = false"):
        assert text in done.stderr + done.stdout


def test_train_learning_rate_keys_are_refused_naming_the_methods_own(capsys):
    from reidcore.testing import reid_cli

    assert reid_cli("check", "dgnet-synthetic", "--set", "train.lr=0.1",
                    "--set", "train.optimizer=sgd") != 0
    said = capsys.readouterr()
    text = said.err + said.out
    assert "train.lr" in text and "train.optimizer" in text
    assert "method.lr_ea" in text and "lr_g" in text and "lr_d" in text
    # the teacher stages are the core's baseline: they read [train]'s keys
    assert reid_cli("check", "dgnet-teacher-synthetic", "--set", "train.lr=0.1") == 0

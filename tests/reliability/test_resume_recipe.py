"""Issue 16, item 3: --resume with a different recipe is refused with the differing keys;
--allow-recipe-change accepts the safe ones (more epochs) and records them."""

from __future__ import annotations

import json

import pytest

from reidcore.cli import main
from reidcore.engine.runner import run_recipe
from reidcore.errors import ReidError
from reidcore.plugins import get_plugins
from reidcore.recipe import read_toml
from tests.engine.conftest import fast_recipe_dict, resolve_dict


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_resume_with_another_recipe_is_refused_unless_the_change_is_allowed(cache, tmp_path):
    run_dir = tmp_path / "run"
    run_recipe(resolve_dict(fast_recipe_dict(cache, epochs=1)), get_plugins(), out=run_dir,
               quiet=True)
    written = (run_dir / "recipe.toml").read_text()
    manifest = (run_dir / "manifest.json").read_text()

    changed = resolve_dict(fast_recipe_dict(cache, epochs=2, lr=2e-3))
    with pytest.raises(ReidError) as info:
        run_recipe(changed, get_plugins(), out=run_dir, resume=True, quiet=True)
    message = str(info.value)
    assert "train.epochs (1 -> 2)" in message and "train.lr (0.001 -> 0.002)" in message
    assert "--allow-recipe-change" in message
    # the directory still describes its checkpoints
    assert (run_dir / "recipe.toml").read_text() == written
    assert (run_dir / "manifest.json").read_text() == manifest

    # allowed, but lr is not a safe change
    with pytest.raises(ReidError, match=r"these keys differ too: train\.lr \(0\.001 -> 0\.002\)"):
        run_recipe(changed, get_plugins(), out=run_dir, resume=True, quiet=True,
                   allow_recipe_change=True)
    assert (run_dir / "recipe.toml").read_text() == written

    longer = resolve_dict(fast_recipe_dict(cache, epochs=2))
    summary = run_recipe(longer, get_plugins(), out=run_dir, resume=True, quiet=True,
                         allow_recipe_change=True)
    assert summary["status"] == "completed" and summary["steps"] == 2
    assert read_toml(run_dir / "recipe.toml")["train"]["epochs"] == 2
    history = json.loads((run_dir / "manifest.json").read_text())["recipe_changes"]
    assert len(history) == 1
    assert history[0]["changes"] == [{"key": "train.epochs", "old": 1, "new": 2}]
    assert history[0]["resumed_at_epoch"] == 1 and history[0]["resumed_at_step"] == 1


def test_allow_recipe_change_needs_resume(capsys):
    assert main(["run", "quickstart", "--allow-recipe-change"]) == 1
    assert "--allow-recipe-change applies to --resume only" in capsys.readouterr().err

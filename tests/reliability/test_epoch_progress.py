"""Issue 14 (the epoch part): a progress bar within each epoch, on a terminal only."""

from __future__ import annotations

from reidcore.engine.runner import run_recipe
from reidcore.plugins import get_plugins
from tests.engine.conftest import fast_recipe_dict, resolve_dict


def test_epoch_progress_bar_on_a_terminal_and_none_elsewhere(tmp_path, monkeypatch, capsys):
    recipe = resolve_dict(fast_recipe_dict(tmp_path / "data", epochs=1, steps=3))
    monkeypatch.setenv("REID_PROGRESS", "1")  # as on a terminal
    run_recipe(recipe, get_plugins(), out=tmp_path / "shown", quiet=False)
    shown = capsys.readouterr()
    # tqdm draws the bar when it opens (0/3); later redraws depend on timing (mininterval)
    assert "epoch 1/1:" in shown.err and "0/3" in shown.err and "step" in shown.err
    assert "epoch 1/1:" not in shown.out  # the log lines stay clean

    monkeypatch.delenv("REID_PROGRESS")  # pytest's stderr is not a terminal
    run_recipe(recipe, get_plugins(), out=tmp_path / "piped", quiet=False)
    piped = capsys.readouterr()
    assert "epoch 1/1:" not in piped.err and "it/s]" not in piped.err
    assert "epoch 1/1  loss" in piped.out

"""Issue 25, item 5: with train.nonfinite = "skip", a run whose recent steps are mostly
skipped stops with a message that says so (instead of dying at evaluation on a NaN distance
matrix), and the skip count is kept in the failed run's summary.json too."""

from __future__ import annotations

import json

import pytest

from reidcore.engine.nonfinite import MIN_SKIPPED, RECENT_STEPS, TooManySkippedError
from reidcore.engine.runner import run_recipe
from reidcore.plugins import get_plugins
from tests.engine.conftest import fast_recipe_dict, resolve_dict
from tests.reliability.test_nonfinite import poison_at


def test_mostly_skipped_steps_stop_the_run_and_the_summary_keeps_the_count(tmp_path,
                                                                          monkeypatch):
    poison_at(monkeypatch, 1, "weights")  # step 2 onwards: every loss is NaN
    run_dir = tmp_path / "run"
    recipe = resolve_dict(fast_recipe_dict(tmp_path / "data", epochs=2, steps=6,
                                           nonfinite="skip"))
    with pytest.raises(TooManySkippedError) as info:
        run_recipe(recipe, get_plugins(), out=run_dir, quiet=True)
    message = str(info.value)
    # step 1 good, steps 2-5 skipped: 4 of the last 5 (> half, >= MIN_SKIPPED) stop it
    assert MIN_SKIPPED == 4 and RECENT_STEPS == 20
    assert "4 of the last 5 steps had a non-finite loss and were skipped" in message
    assert "more than half of the last 20 steps" in message
    assert "lower train.lr" in message and "distance matrix" not in message
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["nonfinite_steps"] == 4


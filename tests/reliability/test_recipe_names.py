"""Issue 16, item 6: names that refer to metrics (train.best_metric), parameter groups
(train.lr_mult keys, train.freeze) are checked against what the method and the evaluator
declare, at `reid check --build` and at the start of `reid run`, with a did-you-mean."""

from __future__ import annotations

import pytest

from reidcore.cli import main
from reidcore.engine.runner import run_recipe
from reidcore.errors import RecipeError
from reidcore.plugins import get_plugins
from tests.engine.conftest import fast_recipe_dict, resolve_dict


def test_check_build_reports_every_unknown_name_with_a_suggestion(capsys):
    code = main(["check", "quickstart", "--build", "--set", 'train.best_metric="map"',
                 "--set", "train.lr_mult={backbon = 0.1, neck = 2.0}",
                 "--set", 'train.freeze=["backbon"]', "--set", "train.freeze_epochs=2"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "has 3 problem(s)" in err
    assert ("$.train.best_metric: no metric of evaluator 'ranking' named 'map' "
            "(did you mean 'mAP'?); there are: mAP, mAP_ci_high, mAP_ci_low, mINP") in err
    assert ("$.train.lr_mult.backbon: no parameter group of method 'baseline' named "
            "'backbon' (did you mean 'backbone'?); there are: backbone, classifier, neck") in err
    assert "$.train.freeze[0]: no parameter group of method 'baseline' named 'backbon'" in err


def test_check_build_accepts_declared_names(capsys):
    assert main(["check", "quickstart", "--build", "--set", 'train.best_metric="rank1"',
                 "--set", "train.lr_mult={backbone = 0.1}", "--set", "train.freeze_epochs=2",
                 "--set", 'train.freeze=["backbone", "neck"]']) == 0, capsys.readouterr().err


def test_run_refuses_unknown_names_before_training(tmp_path):
    recipe = resolve_dict(fast_recipe_dict(tmp_path / "data", epochs=1,
                                           lr_mult={"classifer": 10.0}, best_metric="Rank1"))
    with pytest.raises(RecipeError) as info:
        run_recipe(recipe, get_plugins(), out=tmp_path / "run", quiet=True)
    message = str(info.value)
    assert "$.train.lr_mult.classifer" in message and "(did you mean 'classifier'?)" in message
    assert "$.train.best_metric" in message and "(did you mean 'rank1'?)" in message
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained

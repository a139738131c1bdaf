"""Issue 16, item 7: every float option is finite (inf and nan are valid TOML numbers),
core or plugin, and seeds are >= 0; `reid check` reports each with its recipe path."""

from __future__ import annotations

import pytest

from reidcore.cli import main
from reidcore.errors import RecipeError
from tests.engine.conftest import resolve_dict, tiny_recipe_dict


def test_nonfinite_floats_and_negative_seeds_are_recipe_errors(tmp_path):
    raw = tiny_recipe_dict(tmp_path)
    raw["seed"] = -5
    raw["train"].update(weight_decay=float("inf"), lr=float("nan"),
                        lr_mult={"neck": float("-inf")})
    raw["losses"][0]["weight"] = float("inf")
    raw["losses"][1]["margin"] = float("nan")
    raw["backbone"]["gem_p"] = float("inf")
    raw["evaluate"]["seed"] = -1
    with pytest.raises(RecipeError) as info:
        resolve_dict(raw)
    assert {str(p) for p in info.value.problems} == {
        "$.seed: expected a seed >= 0, got -5",
        "$.train.weight_decay: expected a finite number, got inf",
        "$.train.lr: expected a finite number, got nan",
        "$.train.lr_mult.neck: expected a finite number, got -inf",
        "$.losses[0].weight: expected a finite number, got inf",
        "$.losses[1].margin: expected a finite number, got nan",
        "$.backbone.gem_p: expected a finite number, got inf",
        "$.evaluate.seed: expected a seed >= 0, got -1",
    }


@pytest.mark.parametrize("override", ["train.weight_decay=inf", "train.lr=nan", "seed=-5"])
def test_reid_check_refuses_them(override, capsys):
    assert main(["check", "quickstart", "--set", override]) == 2
    key = override.split("=")[0]
    assert f"$.{key}: expected a " in capsys.readouterr().err


def test_finite_values_and_seed_zero_pass(tmp_path):
    raw = tiny_recipe_dict(tmp_path)
    raw["seed"] = 0
    raw["train"]["weight_decay"] = 0.0
    assert resolve_dict(raw).seed == 0

"""Multi-seed runs (``reid run --seeds``), ``reid compare``, and the statistics behind them:
the spread and the exact sign-flip test checked on values worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import attrs
import pytest
import tomli_w

from reidcore.compat import tomllib
from reidcore.engine.compare import compare, format_comparison
from reidcore.engine.seed_group import with_seed
from reidcore.errors import ReidError
from reidcore.recipe import Requirement
from reidcore.statistics import paired_test, sign_flip_p_value, spread
from reidcore.testing import reid_cli
from tests.engine.conftest import fast_recipe_dict, resolve_dict


def test_spread_is_mean_sample_sd_and_range():
    result = spread([0.1, 0.2, 0.3])
    assert math.isclose(result.mean, 0.2) and math.isclose(result.sd, 0.1)
    assert (result.n, result.min, result.max) == (3, 0.1, 0.3)
    assert spread([0.5]).sd == 0.0


def test_sign_flip_p_values_worked_out_by_hand():
    # differences 1, 2, 3: of the 8 sign patterns only +++ and --- reach |sum| = 6
    assert sign_flip_p_value([1.0, 2.0, 3.0]) == 2 / 8
    # 1, 2, -3: |sum| = 0, so every pattern is at least as extreme
    assert sign_flip_p_value([1.0, 2.0, -3.0]) == 1.0
    # 1, 1, 1, 5: |sum| = 8 only for ++++ and ----; 6 for +++- (5 kept): 4 of 16 reach 6+
    assert sign_flip_p_value([1.0, 1.0, 1.0, 5.0]) == 2 / 16


def test_paired_test_uses_the_seeds_both_arms_ran():
    a = {0: 0.20, 1: 0.25, 2: 0.30, 7: 0.9}
    b = {0: 0.21, 1: 0.27, 2: 0.33, 5: 0.1}
    test = paired_test(a, b)
    assert test is not None and test.seeds == (0, 1, 2)
    assert math.isclose(test.mean_difference, 0.02) and math.isclose(test.sd_difference, 0.01)
    assert test.p_value == 0.25
    assert paired_test({0: 0.1}, {0: 0.2, 1: 0.3}) is None


def test_with_seed_sets_every_stage_of_the_chain(engine_cache):
    recipe = resolve_dict(fast_recipe_dict(engine_cache))
    recipe = attrs.evolve(recipe, requires={
        "teacher": Requirement(recipe="teacher.toml", set=["train.epochs=2"]),
        "fixed": Requirement(recipe="other.toml", set=["seed = 9"]),
        "existing": Requirement(run="runs/x")})
    seeded = with_seed(recipe, 4)
    assert seeded.seed == 4
    assert seeded.requires["teacher"].set == ["train.epochs=2", "seed=4"]
    assert seeded.requires["fixed"].set == ["seed = 9"]  # the requirement's own seed is kept
    assert seeded.requires["existing"].run == "runs/x"


def _recipe_file(folder: Path, cache: Path, lr: float) -> Path:
    raw = fast_recipe_dict(cache, epochs=1)
    raw["train"]["lr"] = lr
    path = folder / f"lr{lr}.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def test_seed_group_runs_resumes_and_compares(engine_cache, tmp_path, capsys):
    recipe = _recipe_file(tmp_path, engine_cache, 1e-3)
    group = tmp_path / "group"
    describe = "description=stage of seed {seed}"  # {seed}: each run's own value
    assert reid_cli("run", recipe, "--seeds", "0", "1", "--out", group, "--set", describe) == 0
    summary = json.loads((group / "seeds.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["runs"] == {"0": "seed-0", "1": "seed-1"}
    for seed in (0, 1):
        written = tomllib.loads((group / f"seed-{seed}" / "recipe.toml").read_text())
        assert written["seed"] == seed and written["description"] == f"stage of seed {seed}"
    mAP = summary["metrics"]["synthetic"]["mAP"]
    per_seed = [json.loads((group / f"seed-{s}" / "summary.json").read_text())
                ["metrics"]["synthetic"]["mAP"] for s in (0, 1)]
    assert mAP["values"] == {"0": per_seed[0], "1": per_seed[1]}
    assert math.isclose(mAP["mean"], sum(per_seed) / 2)
    assert math.isclose(mAP["sd"], abs(per_seed[0] - per_seed[1]) / math.sqrt(2))

    # started again: seed 0 is kept, seed 1 (its summary lost, as after a kill) resumes
    (group / "seed-1" / "summary.json").unlink()
    capsys.readouterr()
    assert reid_cli("run", recipe, "--seeds", "0", "1", "--out", group, "--set", describe) == 0
    out = capsys.readouterr().out
    assert "seed 0: completed run" in out and "seed 1: resuming" in out
    assert json.loads((group / "seeds.json").read_text())["metrics"] == summary["metrics"]

    other = tmp_path / "other"
    assert reid_cli("run", _recipe_file(tmp_path, engine_cache, 3e-3), "--seeds", "0", "1",
                    "--out", other) == 0
    result = compare([group, other, group / "seed-1"])
    assert [row["arm"] for row in result["arms"]] == [
        f"{group} (2 seeds)", f"{other} (2 seeds)", f"{group / 'seed-1'} (seed 1)"]
    paired = result["paired"][0]["tests"]["mAP"]
    theirs = json.loads((other / "seeds.json").read_text())["metrics"]["synthetic"]["mAP"]
    assert paired["seeds"] == [0, 1]
    assert math.isclose(paired["mean_difference"], theirs["mean"] - mAP["mean"])
    assert result["paired"][1]["tests"]["mAP"] is None  # one seed in common: no test
    assert "exact sign-flip p = " in format_comparison(result)


def test_compare_and_seeds_refuse_bad_input(engine_cache, tmp_path, capsys):
    with pytest.raises(ReidError, match="neither a run directory"):
        compare([tmp_path])
    group = tmp_path / "g"
    group.mkdir()
    (group / "seeds.json").write_text(json.dumps({"seeds": [0], "metrics": {"synthetic": {
        "mAP": {"values": {"0": 0.5}}}}}))
    with pytest.raises(ReidError, match="no metric 'mAp' on synthetic .*did you mean 'mAP'"):
        compare([group], metrics=["mAp"])
    with pytest.raises(ReidError, match="no test set 'synthetc' .*did you mean 'synthetic'"):
        compare([group], test_set="synthetc")
    recipe = _recipe_file(tmp_path, engine_cache, 1e-3)
    assert reid_cli("run", recipe, "--seeds", "0", "0", "--out", tmp_path / "x") != 0
    assert "lists a seed twice" in capsys.readouterr().err
    assert reid_cli("run", recipe, "--seeds", "0", "--resume", "--out", tmp_path / "x") != 0
    assert "leave out --resume" in capsys.readouterr().err

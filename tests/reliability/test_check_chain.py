"""Issue 25, item 4: ``reid check`` checks the whole chain: every ``[requires.*]`` stage's
recipe resolved with its ``set`` overrides (a typo in a key, a misspelt recipe), circles of
requirements, and the run options a method names (``MethodNeeds.runs``: DG-Net's
``method.teacher = "teachr"``), each with the stage named and a did-you-mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from reidcore.cli import main

QUICKSTART = (Path(__file__).parents[2] / "reidcore" / "recipes" / "quickstart.toml").read_text()


def _recipe(path: Path, requires: str = "") -> Path:
    path.write_text(QUICKSTART + "\n" + requires)
    return path


def _check(capsys, *args) -> tuple[int, str]:
    code = main(["check", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_typo_in_a_requirement_override_is_found(tmp_path, capsys):
    _recipe(tmp_path / "stage.toml")
    top = _recipe(tmp_path / "top.toml", '[requires.first]\nrecipe = "stage.toml"\n'
                                         'set = ["train.epoks=1"]\n')
    code, out = _check(capsys, top)
    assert code != 0 and "ok:" not in out
    assert f"{top}: [requires.first] (recipe = 'stage.toml'" in out
    assert "epoks" in out and "did you mean 'epochs'?" in out


def test_a_misspelt_requirement_recipe_is_found(tmp_path, capsys):
    top = _recipe(tmp_path / "top.toml", '[requires.teacher]\nrecipe = "dgnet-teacher-synthetc"\n')
    code, out = _check(capsys, top)
    assert code != 0 and "[requires.teacher]" in out
    assert "did you mean 'dgnet-teacher-synthetic'?" in out


def test_a_circle_of_requirements_is_found(tmp_path, capsys):
    first = _recipe(tmp_path / "a.toml", '[requires.other]\nrecipe = "b.toml"\n')
    _recipe(tmp_path / "b.toml", '[requires.other]\nrecipe = "a.toml"\n')
    code, out = _check(capsys, first)
    assert code != 0 and "recipes require each other in a circle" in out
    assert f"{first.resolve()} -> {(tmp_path / 'b.toml').resolve()} -> {first.resolve()}" in out


def test_a_misspelt_run_role_of_a_method_is_found(capsys):
    code, out = _check(capsys, "dgnet-synthetic", "--set", "method.teacher=teachr")
    assert code != 0
    assert ("method.teacher = 'teachr' names no [requires.teachr] of this recipe (did you "
            "mean 'teacher'?)") in out


def test_a_valid_chain_lists_its_stages(capsys):
    code, out = _check(capsys, "dgnet-synthetic")
    assert code == 0 and "ok: requirement teacher: " in out
    assert "dgnet-teacher-synthetic.toml is valid" in out


@pytest.mark.parametrize("textures", ["folder", "san_pg"])
def test_a_run_option_is_checked_only_where_the_method_reads_it(capsys, textures):
    # SAN reads method.san_pg only with textures = "san_pg" (RunOption.used_when)
    code, out = _check(capsys, "san-synthetic", "--set", f"method.textures={textures}",
                       "--set", "method.san_pg=sanpg", "--set", "method.texture_root=t")
    assert (code == 0) == (textures == "folder"), out

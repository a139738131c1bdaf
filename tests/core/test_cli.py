"""The reid CLI: exit codes, messages without tracebacks, listing."""

import copy
import json
import subprocess
import sys

import pytest
import tomli_w

from reidcore import cli, plugins

from .fakes import VALID_RECIPE, FakePlugin, fake_specs


@pytest.fixture
def fake_plugins(monkeypatch):
    """The CLI with the fake components (no ranking evaluator clash: core's is replaced)."""
    loaded = plugins.load_plugins(extra=[("fakes", FakePlugin(fake_specs()))])
    monkeypatch.setattr(plugins, "get_plugins", lambda disabled=(): loaded)
    return loaded


def write_recipe(tmp_path, raw, name="recipe.toml"):
    path = tmp_path / name
    path.write_bytes(tomli_w.dumps(raw).encode())
    return path


def reid(*args, env=None):
    return subprocess.run([sys.executable, "-m", "reidcore", *args], capture_output=True,
                          text=True, env=env)


def test_check_reports_all_problems_once_with_exit_2(tmp_path, fake_plugins, capsys):
    raw = copy.deepcopy(VALID_RECIPE)
    raw["trian"] = {}
    raw["backbone"].update(name="fakenett")
    raw["losses"][0]["margin"] = "wide"
    raw["train"]["epochs"] = 0
    code = cli.main(["check", str(write_recipe(tmp_path, raw))])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("reid: error:") == 1 and "Traceback" not in err
    for path in ("$.trian", "$.backbone.name", "$.losses[0].margin", "$.train.epochs"):
        assert path in err
    assert "did you mean 'fakenet'?" in err


def test_check_valid_recipe_and_set_override(tmp_path, fake_plugins, capsys):
    raw = copy.deepcopy(VALID_RECIPE)
    path = write_recipe(tmp_path, raw)
    assert cli.main(["check", str(path)]) == 0
    assert "is valid" in capsys.readouterr().out
    assert cli.main(["check", str(path), "--set", "backbone.last_stride=7"]) == 2
    assert "$.backbone.last_stride: expected one of 1, 2, got 7" in capsys.readouterr().err
    assert cli.main(["check", str(path), "--print", "--set", "seed=5"]) == 0
    assert "seed = 5" in capsys.readouterr().out


def test_missing_recipe_and_bad_toml_exit_2_with_one_line(tmp_path):
    result = reid("check", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"reid: error: recipe file not found: {tmp_path / 'nope.toml'}"
    bad = tmp_path / "bad.toml"
    bad.write_text("[backbone\nname = 1\n")
    result = reid("check", str(bad))
    assert result.returncode == 2 and "is not valid TOML" in result.stderr
    assert "line 1" in result.stderr and "Traceback" not in result.stderr


def test_unknown_packaged_recipe_name_suggests():
    result = reid("run", "quickstrat")
    assert result.returncode == 2
    assert "no recipe file or packaged recipe named 'quickstrat'" in result.stderr


def test_debug_flag_shows_the_traceback(tmp_path):
    result = reid("check", str(tmp_path / "nope.toml"), "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_version_and_plugins_json():
    result = reid("--version")
    assert result.returncode == 0 and result.stdout.startswith("reid ")
    listing = json.loads(reid("plugins", "--json").stdout)
    core = next(item for item in listing if item["name"] == "reidcore")
    assert core["status"] == "ok" and core["distribution"] == "reidcore"


def test_unknown_command_is_a_usage_error():
    result = reid("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr

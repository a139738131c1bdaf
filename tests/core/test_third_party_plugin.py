"""The path a third party takes: a real distribution, pip-installed, found by entry point.

``tests/plugins/example`` is written only from the README's "Writing a plugin" section;
``tests/plugins/broken`` fails on import, as a plugin with a missing dependency does.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reidcore import plugins
from reidcore.testing import check_component, components_of

PLUGIN_DIRS = Path(__file__).resolve().parent.parent / "plugins"
DISTRIBUTIONS = {"example": "reid-plugin-example", "broken": "reid-plugin-broken",
                 "misspelt": "reid-plugin-misspelt", "oldapi": "reid-plugin-oldapi"}


def pip(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args, "--quiet",
                             "--disable-pip-version-check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def installed_plugins():
    for folder in DISTRIBUTIONS:
        pip("install", "--no-deps", "--no-build-isolation", "--no-index",
            str(PLUGIN_DIRS / folder))
    importlib.invalidate_caches()
    plugins.clear_cache()
    yield
    pip("uninstall", "--yes", *DISTRIBUTIONS.values())
    importlib.invalidate_caches()
    plugins.clear_cache()


def reid(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reidcore", *args], capture_output=True,
                          text=True, env={**os.environ, **env})


def listing(*args: str, **env: str) -> dict[str, dict]:
    result = reid("plugins", "--json", *args, **env)
    assert result.returncode == 0, result.stderr
    return {item["name"]: item for item in json.loads(result.stdout)}


def test_plugins_lists_the_third_party_plugin_and_reports_the_broken_one(installed_plugins):
    found = listing()
    example = found["example"]
    assert example["status"] == "ok"
    assert (example["distribution"], example["version"]) == ("reid-plugin-example", "0.4.0")
    assert example["components"] == {"backbone": ["tiny_cnn"], "loss": ["embedding_norm"],
                                     "method": ["tiny_classifier"]}
    broken = found["broken"]
    assert broken["status"] == "failed"
    assert (broken["distribution"], broken["version"]) == ("reid-plugin-broken", "9.9.1")
    assert "ModuleNotFoundError: No module named 'a_dependency_that_is_not_installed'" in \
        broken["error"]
    assert found["reidcore"]["status"] == "ok"
    text = reid("plugins")
    assert text.returncode == 0
    assert "reid-plugin-broken 9.9.1 (plugin 'broken') FAILED" in text.stdout


def test_a_misspelt_hook_is_that_plugins_reported_error(installed_plugins):
    """``reid_loss`` for ``reid_losses``: pluggy's check_pending runs per plugin at load."""
    misspelt = listing()["misspelt"]
    assert misspelt["status"] == "failed"
    assert "'reid_loss' (did you mean 'reid_losses'?)" in misspelt["error"]
    assert misspelt["components"] == {}
    text = reid("plugins")
    assert "reid-plugin-misspelt 1.0.0 (plugin 'misspelt') FAILED" in text.stdout
    assert "reid_loss" in text.stdout and "reid_losses" in text.stdout


def test_a_plugin_for_another_api_version_is_reported(installed_plugins):
    old = listing()["oldapi"]
    assert old["status"] == "failed"
    assert "written for reidcore API version 1" in old["error"]
    assert "provides API version 2" in old["error"]
    text = reid("plugins")
    assert "reid-plugin-oldapi 1.0.0 (plugin 'oldapi') FAILED" in text.stdout


def test_plugins_can_be_disabled_by_env_or_flag(installed_plugins):
    assert listing(REID_DISABLE_PLUGINS="broken")["broken"]["status"] == "disabled"
    flagged = listing("--disable-plugin", "reid-plugin-example")
    assert flagged["example"]["status"] == "disabled"
    assert flagged["example"]["components"] == {}


def test_a_recipe_using_the_plugin_is_accepted(installed_plugins, tmp_path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text('[method]\nname = "baseline"\n\n[backbone]\nname = "tiny_cnn"\n'
                      'width = 8\n\n[[data.source]]\nname = "synthetic"\n\n'
                      '[[data.test]]\nname = "synthetic"\n')
    result = reid("check", str(recipe))
    assert result.returncode == 0, result.stderr
    result = reid("check", str(recipe), "--set", "backbone.name=tiny_cn")
    assert result.returncode == 2
    assert "unknown backbone 'tiny_cn' (did you mean 'tiny_cnn'?)" in result.stderr
    assert "reid-plugin-broken 9.9.1 (plugin 'broken'): failed to import" in result.stderr


def test_packaged_recipe_of_the_plugin_is_listed(installed_plugins):
    result = reid("recipes", "--json")
    names = {item["name"]: item["provider"] for item in json.loads(result.stdout)}
    assert names.get("example-tiny") == "example"


def test_contract_checks_pass_on_the_third_party_components(installed_plugins):
    specs = components_of("reid-plugin-example")
    assert sorted(spec.name for spec in specs) == ["embedding_norm", "tiny_classifier",
                                                   "tiny_cnn"]
    for spec in specs:
        check_component(spec)

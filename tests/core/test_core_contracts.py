"""The core runs the same contract checks over its own components that plugins run."""

from pathlib import Path

import pytest

from reidcore.compat import tomllib
from reidcore.plugins import get_plugins
from reidcore.testing import check_component, components_of, spec_id

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("spec", components_of("reidcore"), ids=spec_id)
def test_core_component_contract(spec):
    check_component(spec)


def plugin_distributions() -> list[str]:
    return sorted(tomllib.loads(path.read_text())["project"]["name"]
                  for path in ROOT.glob("plugins/*/pyproject.toml"))


@pytest.mark.parametrize("distribution", plugin_distributions())
def test_every_plugin_in_the_tree_is_installed_and_loads(distribution):
    infos = {info.distribution: info for info in get_plugins().infos}
    assert distribution in infos, f"{distribution} is not installed in the test environment"
    assert infos[distribution].ok, infos[distribution].error

"""One contract test over the registry: every component of every installed plugin (the
core's included) is built and run by its kind's check, as timm tests every model. Every
method runs ``configure_optimizers`` and one ``training_step``, and every parameter of
every optimizer must receive a gradient."""

from pathlib import Path

import pytest

from reidcore.compat import tomllib
from reidcore.testing import check_component, installed_plugins, spec_id

ROOT = Path(__file__).resolve().parents[2]


def provider_id(spec) -> str:
    return f"{spec.provider.split()[0]}:{spec_id(spec)}"


@pytest.mark.parametrize("spec", list(installed_plugins().registry.specs()), ids=provider_id)
def test_component_contract(spec):
    check_component(spec)


def plugin_distributions() -> list[str]:
    return sorted(tomllib.loads(path.read_text())["project"]["name"]
                  for path in ROOT.glob("plugins/*/pyproject.toml"))


@pytest.mark.parametrize("distribution", plugin_distributions())
def test_every_plugin_in_the_tree_is_installed_and_loads(distribution):
    infos = {info.distribution: info for info in installed_plugins().infos}
    assert distribution in infos, f"{distribution} is not installed in the test environment"
    assert infos[distribution].ok, infos[distribution].error

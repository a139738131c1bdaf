"""The core's contract checks over every component this plugin registers."""

import subprocess
import sys

import pytest
from reidcore.testing import check_component, components_of, spec_id

PLUGIN = "reid-plugin-dgnet"


@pytest.mark.parametrize("spec", components_of(PLUGIN), ids=spec_id)
def test_contract(spec):
    check_component(spec)


def test_registers_what_the_readme_lists():
    names = {(spec.kind.value, spec.name) for spec in components_of(PLUGIN)}
    assert names == {("generator", "dgnet_structure_encoder"), ("generator", "dgnet_decoder"),
                     ("generator", "dgnet_discriminator"), ("method", "dgnet")}


def test_hook_module_imports_no_torch():
    code = ("import sys, reid_plugin_dgnet.plugin as p; p.reid_generators(); "
            "p.reid_methods(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"

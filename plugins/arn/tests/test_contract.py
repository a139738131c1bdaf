"""The core's contract checks over every component this plugin registers."""

import subprocess
import sys

import pytest
from reidcore.testing import check_component, components_of, spec_id

PLUGIN = "reid-plugin-arn"


@pytest.mark.parametrize("spec", components_of(PLUGIN), ids=spec_id)
def test_contract(spec):
    check_component(spec)


def test_registers_what_the_readme_lists():
    names = {(spec.kind.value, spec.name) for spec in components_of(PLUGIN)}
    assert names == {("generator", "arn_network"), ("generator", "identity_pose_network"),
                     ("loss", "arn_reconstruction"), ("loss", "arn_difference"),
                     ("loss", "mmd"), ("loss", "arn_contrastive"),
                     ("method", "arn")}


def test_hook_module_imports_no_torch():
    code = ("import sys, reid_plugin_arn.plugin as p; p.reid_generators(); p.reid_losses(); "
            "p.reid_methods(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"

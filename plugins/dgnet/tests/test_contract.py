"""What the plugin registers, and a hook module without torch (the core's
tests/core/test_core_contracts.py runs the contract checks over every component, a
training step of the method included)."""

import subprocess
import sys

from reidcore.testing import components_of

PLUGIN = "reid-plugin-dgnet"


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

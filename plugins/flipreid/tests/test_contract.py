"""What the plugin registers (the core's tests/core/test_core_contracts.py runs the
contract checks over every installed component, these included), and its hook module
imports no torch."""

import subprocess
import sys

from reidcore.testing import components_of


def test_components_registered():
    """The components the README lists, no more."""
    names = {(spec.kind.value, spec.name) for spec in components_of("reid-plugin-flipreid")}
    assert names == {("loss", "flipping"), ("method", "flipreid")}


def test_hook_module_imports_no_torch():
    """``reid check`` and ``reid plugins`` load the hook module: it must stay light."""
    code = ("import sys, reid_plugin_flipreid.plugin as p; "
            "assert p.REID_API_VERSION == 2; p.reid_losses(); p.reid_methods(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)

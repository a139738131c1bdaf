"""Principle 7: discovering plugins and listing components imports no torch."""

import subprocess
import sys


def test_loading_every_installed_plugin_imports_no_torch():
    code = ("import sys; from reidcore.plugins import get_plugins; get_plugins(); "
            "heavy = sorted(m for m in ('torch', 'torchvision', 'timm', 'numba') "
            "if m in sys.modules); print(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported at plugin discovery: {result.stdout}"

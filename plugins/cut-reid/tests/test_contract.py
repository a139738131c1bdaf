"""What this plugin registers (the core's registry-wide contract test,
tests/core/test_core_contracts.py, runs the contract checks on every component)."""

from reidcore.testing import components_of


def test_registers_what_the_readme_lists():
    names = {(spec.kind.value, spec.name) for spec in components_of("reid-plugin-cut-reid")}
    assert {("generator", "resnet_generator"), ("generator", "patch_discriminator"),
            ("loss", "lsgan"), ("loss", "feature_matching"), ("loss", "patch_nce"),
            ("method", "cut_reid")} <= names


def test_hook_module_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, reid_plugin_cut_reid.plugin as p; p.reid_generators(); "
            "p.reid_losses(); p.reid_methods(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"

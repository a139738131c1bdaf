"""The plugin author's API: one public module, and plugins that use nothing else."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {"reidcore.api"}
PUBLIC_IN_TESTS = PUBLIC | {"reidcore", "reidcore.testing", "reidcore.hookimpl",
                             "reidcore.__version__"}


def plugin_test_and_benchmark_files() -> list[Path]:
    """Every plugin's tests and benchmarks (and the third-party example's tests)."""
    files = [path for pattern in ("plugins/*/tests/**/*.py", "plugins/*/benchmarks/**/*.py",
                                  "tests/plugins/example/tests/**/*.py")
             for path in ROOT.glob(pattern)]
    return sorted(files)


def plugin_package_files() -> list[Path]:
    """Package code of every plugin in the tree and of the third-party example (not tests)."""
    files = [path for path in ROOT.glob("plugins/*/reid_plugin_*/**/*.py")]
    files += list(ROOT.glob("tests/plugins/example/reid_plugin_example/**/*.py"))
    return sorted(files)


def core_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every reidcore import in ``path``, function-level ones too;
    ``from reidcore import x`` counts as importing ``reidcore.x`` (or ``reidcore``
    itself when ``x`` is not a module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names
                      if alias.name.split(".")[0] == "reidcore"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "reidcore":
                found += [(node.lineno, f"reidcore.{alias.name}") for alias in node.names]
            elif node.module.split(".")[0] == "reidcore":
                found.append((node.lineno, node.module))
    return found


def test_the_scan_finds_both_plugins_and_the_example():
    folders = {str(path.relative_to(ROOT).parent.parent) for path in plugin_package_files()}
    assert {"plugins/flipreid", "plugins/cut-reid", "tests/plugins/example"} <= folders


def test_plugin_package_code_imports_only_the_public_api():
    offending = [f"{path.relative_to(ROOT)}:{line}: {module}"
                 for path in plugin_package_files() for line, module in core_imports(path)
                 if module not in PUBLIC]
    assert not offending, ("plugin package code imports core internals; use reidcore.api "
                           "(add what is missing to it):\n" + "\n".join(offending))


def test_the_scan_catches_internal_and_function_level_imports(tmp_path):
    source = tmp_path / "bad.py"
    source.write_text("from reidcore import hookimpl\nimport reidcore.api\n"
                      "def f():\n    from reidcore.engine.optim import Clock\n"
                      "    import reidcore.plugins\n")
    assert core_imports(source) == [(1, "reidcore.hookimpl"), (2, "reidcore.api"),
                                    (4, "reidcore.engine.optim"), (5, "reidcore.plugins")]


def test_plugin_tests_and_benchmarks_use_only_public_modules():
    """A plugin's tests and benchmarks are written as a third party's would be: with
    ``reidcore``, ``reidcore.api`` and ``reidcore.testing`` only."""
    files = plugin_test_and_benchmark_files()
    assert any("benchmarks" in path.parts for path in files)
    offending = [f"{path.relative_to(ROOT)}:{line}: {module}" for path in files
                 for line, module in core_imports(path) if module not in PUBLIC_IN_TESTS]
    assert not offending, ("plugin tests or benchmarks import core internals; use "
                           "reidcore.testing (add what is missing to it):\n"
                           + "\n".join(offending))


def test_every_exported_name_resolves_and_is_documented():
    import reidcore.api as api

    doc = api.__doc__ or ""
    for name in api.__all__:
        assert getattr(api, name) is not None, name
        if not name.startswith("__"):
            assert f"``{name}``" in doc, f"reidcore.api docstring does not describe {name}"
    with pytest.raises(AttributeError, match="did you mean 'MethodContext'"):
        api.MethodContex  # noqa: B018


def test_a_hook_module_importing_the_api_imports_no_torch():
    code = ("import sys\nfrom reidcore.api import hookimpl, ComponentSpec, RecipeProblem, "
            "ReidError, Kind\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"

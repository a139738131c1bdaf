"""Issue 25, item 10: the README's figures are what its commands give. Its set-up command and
every nox session install with constraints.txt (the versions the figures were measured
with), CI runs ``nox -s quickstart``, and .ci/quickstart_figure.py fails when the
quickstart's result differs from the README's sentence."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PINNED = ("torch", "torchvision", "timm", "numpy", "pillow", "numba")


def _pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return {name.lower(): version for name, version in
            (line.split("==") for line in lines if "==" in line and not line.startswith("#"))}


def test_the_readme_and_nox_install_with_the_constraints_and_ci_checks_the_figure():
    readme = (ROOT / "README.md").read_text()
    assert ".venv/bin/pip install -c constraints.txt -e ." in readme
    assert "nox -s tests plugins lint quickstart" in readme
    assert "nox -s tests plugins lint quickstart" in (ROOT / ".ci" / "run").read_text()
    noxfile = (ROOT / "noxfile.py").read_text()
    assert noxfile.count("session.install(") == noxfile.count("session.install(*LOCK")
    pins = _pins()
    assert all(name in pins for name in PINNED)
    for name in PINNED:  # this environment is the one the figures describe
        assert importlib.metadata.version(name) == pins[name], name


def _figure(tmp_path: Path, mAP: float, rank1: float) -> subprocess.CompletedProcess:
    run = tmp_path / f"run-{mAP}-{rank1}"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(
        {"metrics": {"synthetic": {"mAP": mAP / 100, "rank1": rank1 / 100}}}))
    return subprocess.run([sys.executable, str(ROOT / ".ci" / "quickstart_figure.py"),
                           str(run)], capture_output=True, text=True)


def test_the_figure_check_compares_the_quickstart_with_the_readme(tmp_path):
    readme = " ".join((ROOT / "README.md").read_text().split())
    stated = re.search(r"ended at mAP (\d+\.\d+) / rank-1 (\d+\.\d+)", readme)
    assert stated is not None
    mAP, rank1 = float(stated.group(1)), float(stated.group(2))
    assert _figure(tmp_path, mAP, rank1).returncode == 0
    off = _figure(tmp_path, 25.27, 24.0)  # what a fresh machine got
    assert off.returncode == 1 and f"mAP 25.27 (README: {stated.group(1)})" in off.stdout

"""Developer sessions: ``nox -s tests plugins lint`` is what CI runs; ``bench`` on demand.

Environments are made with uv (hard links from its cache: torch is downloaded once).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).parent
LOCK = ("-c", "constraints.txt")  # the versions the README's figures were measured with
PLUGINS = sorted(path.parent.name for path in ROOT.glob("plugins/*/pyproject.toml"))

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "plugins", "lint", "quickstart"]
nox.options.reuse_existing_virtualenvs = True


def plugin_distribution(folder: str) -> str:
    return tomllib.loads((ROOT / "plugins" / folder / "pyproject.toml").read_text())["project"][
        "name"]


@nox.session
def tests(session: nox.Session) -> None:
    """The core's suite, with every plugin in the tree installed (so `reid plugins` sees
    them), all tests but the `gpu` ones."""
    session.install(*LOCK, "-e", ".[test]", *(f"-e./plugins/{name}" for name in PLUGINS))
    session.run("pytest", "-m", "not gpu", *session.posargs)


@nox.session
@nox.parametrize("plugin", PLUGINS or ["(none)"])
def plugins(session: nox.Session, plugin: str) -> None:
    """Each plugin's own tests, in an environment with the core and that plugin only."""
    if plugin == "(none)":
        session.skip("no plugin distributions under plugins/ yet")
    session.install(*LOCK, "-e", ".[test]", "-e", f"./plugins/{plugin}")
    session.run("pytest", "-m", "not gpu", f"plugins/{plugin}/tests", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the core, the plugins, tests, benchmarks and docs' code; mypy over the core
    (its settings are in pyproject.toml; it reads torch's own annotations, so the core is
    installed here too)."""
    session.install(*LOCK, "ruff", "mypy", "-e", ".")
    session.run("ruff", "check", "reidcore", "plugins", "tests", "benchmarks", "noxfile.py")
    session.run("mypy")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Every benchmark script in benchmarks/ (prints figures; slow; not part of CI)."""
    session.install(*LOCK, "-e", ".[test]", *(f"-e./plugins/{name}" for name in PLUGINS))
    scripts = session.posargs or sorted(str(p) for p in ROOT.glob("benchmarks/*.py"))
    for script in scripts:
        session.run("python", script)


@nox.session
def quickstart(session: nox.Session) -> None:
    """The README's first command (`reid run quickstart`) at the README's thread count,
    compared with the figure README.md states (.ci/quickstart_figure.py): about 2 minutes."""
    session.install(*LOCK, "-e", ".")
    out = session.create_tmp() + "/quickstart"
    session.run("rm", "-rf", out, external=True)
    session.run("reid", "run", "quickstart", "--out", out, env={"OMP_NUM_THREADS": "2"})
    session.run("python", ".ci/quickstart_figure.py", out)

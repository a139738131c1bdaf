"""Item 8: every recipe a README shows passes ``reid check``.

Two kinds of recipe appear in READMEs: ```toml blocks holding a whole recipe (a table with
``method``; fragments such as a ``[requires]`` table or a ``pyproject.toml`` are not
recipes) and packaged recipe names in ``reid run NAME`` / ``reid check NAME`` commands
(with their ``--set`` overrides). READMEs are found generically (the root one and every
``plugins/*/README.md``), so a new plugin's README is covered as soon as it exists; one
whose distribution is not installed here is skipped with the reason (CI runs each plugin
in its own environment, where it is installed).
"""

from __future__ import annotations

import re
import shlex
from importlib import metadata
from pathlib import Path

import pytest

from reidcore.cli import main
from reidcore.compat import tomllib

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "README.md", *sorted(ROOT.glob("plugins/*/README.md"))]
_FENCE = re.compile(r"^( *)```(\w*)[^\n]*\n(.*?)^\1```", re.M | re.S)
_COMMAND = re.compile(r"(?:^|[\s/`$])reid\s+(?:--\S+\s+)*(run|check)\s+([^`\n|;&#]*)")
_VALUE_OPTIONS = {"--out", "--nproc", "--set", "--disable-plugin"}


def _readme_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _distribution(readme: Path) -> str | None:
    """The distribution a plugin README belongs to (None for the root README)."""
    pyproject = readme.parent / "pyproject.toml"
    if readme.parent == ROOT or not pyproject.is_file():
        return None
    return tomllib.loads(pyproject.read_text())["project"]["name"]


def _skip_unless_installed(readme: Path) -> None:
    name = _distribution(readme)
    if name is None:
        return
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{_readme_id(readme)}: its distribution {name} is not installed in this "
                    "environment (its own CI environment checks it)")


def recipe_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, text) of every ```toml block that is a whole recipe."""
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group(2).lower() != "toml":
            continue
        body = "\n".join(line[len(match.group(1)):] for line in match.group(3).splitlines())
        try:
            data = tomllib.loads(body)
        except tomllib.TOMLDecodeError:
            data = {}
        if "method" in data:
            blocks.append((text.count("\n", 0, match.start()) + 1, body))
    return blocks


def recipe_commands(text: str) -> list[tuple[str, list[str]]]:
    """(packaged recipe name, overrides) of every ``reid run/check NAME`` shown.

    Placeholders (``RECIPE``, ``N``), paths (``runs/<run>/recipe.toml``) and recipe files
    are left out: only names that must resolve to a packaged recipe are returned."""
    found: list[tuple[str, list[str]]] = []
    for match in _COMMAND.finditer(text):
        try:
            words = shlex.split(match.group(2))
        except ValueError:
            continue
        name, overrides, i = None, [], 0
        while i < len(words):
            word = words[i]
            if word.startswith("-"):
                if word in _VALUE_OPTIONS and i + 1 < len(words):
                    if word == "--set":
                        overrides.append(words[i + 1])
                    i += 1
            elif name is None:
                name = word
            i += 1
        if (name is None or name.isupper() or any(c in name for c in "/<>.[]")
                or name.endswith(".toml")):
            continue
        if (name, overrides) not in found:
            found.append((name, overrides))
    return found


def _check(argv: list[str], capsys) -> tuple[int, str]:
    code = main(["check", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_every_readme_is_found():
    assert ROOT / "README.md" in READMES
    assert len(READMES) >= 3  # the root README and the plugins' (flipreid, cut-reid, ...)


@pytest.mark.parametrize("readme", READMES, ids=_readme_id)
def test_readme_recipe_blocks_pass_reid_check(readme: Path, tmp_path, capsys):
    _skip_unless_installed(readme)
    blocks = recipe_blocks(readme.read_text())
    if readme == ROOT / "README.md":
        assert blocks, "the root README shows an example recipe"
    failures = []
    for line, body in blocks:
        path = tmp_path / f"{readme.parent.name}-line{line}.toml"
        path.write_text(body)
        code, output = _check([str(path)], capsys)
        if code != 0:
            failures.append(f"{_readme_id(readme)}:{line}: {output.strip()}")
    assert not failures, "\n".join(failures)


def _recipe_owner(name: str) -> str | None:
    """The distribution in this repository that packages recipe ``name`` (None: the core's
    or unknown here), found by its file, so that the name is checked where it is installed."""
    for found in sorted(ROOT.glob(f"**/recipes/{name}.toml")):
        if "build" in found.relative_to(ROOT).parts:
            continue
        for folder in found.parents:
            if folder == ROOT:
                break
            if (folder / "pyproject.toml").is_file():
                return tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"]
    return None


def _named_cases() -> list:
    cases = []
    for readme in READMES:
        for name, overrides in recipe_commands(readme.read_text()):
            cases.append(pytest.param(readme, name, overrides,
                                      id=f"{_readme_id(readme)}:{name}"))
    return cases


@pytest.mark.parametrize(("readme", "name", "overrides"), _named_cases())
def test_readme_recipe_names_pass_reid_check(readme: Path, name: str, overrides: list[str],
                                             capsys):
    _skip_unless_installed(readme)
    owner = _recipe_owner(name)
    if owner is not None:
        try:
            metadata.distribution(owner)
        except metadata.PackageNotFoundError:
            pytest.skip(f"recipe {name} comes with {owner}, not installed here")
    code, output = _check([name, *(f"--set={o}" for o in overrides)], capsys)
    assert code == 0, f"{_readme_id(readme)}: reid check {name}: {output.strip()}"


def test_the_parsers_find_recipes_and_leave_out_the_rest():
    text = """
```toml
[project]
name = "x"
```
  ```toml
  name = "r"
  [method]
  name = "baseline"
  ```
```toml
[requires.teacher]
recipe = "teacher.toml"
```
`reid run RECIPE [--set K=V]... [--out DIR]`, `reid run --nproc N`, .venv/bin/reid run quickstart
reid run flipreid-market1501 --set data.test.0.root=/data/m   # comment
`reid run runs/<run>/recipe.toml` and `reid check --build flipreid-msmt17 --json`
"""
    assert [body for _, body in recipe_blocks(text)] == [
        'name = "r"\n[method]\nname = "baseline"']
    assert recipe_commands(text) == [("quickstart", []),
                                     ("flipreid-market1501", ["data.test.0.root=/data/m"]),
                                     ("flipreid-msmt17", [])]

"""The core's import graph: no cycles, evaluation and data below the engine, no plugin.

The graph is read with ``ast`` from the source, so nothing is imported to build it. What
counts as an edge ``A -> B`` (A, B modules of ``reidcore``):

* every ``import B`` / ``from B import x`` / ``from . import x`` anywhere in A, inside
  functions too: a lazy import is still a dependency, and a cycle through one fails as soon
  as both ends are imported in the wrong order;
* ``importlib.import_module("B")`` with a literal name;
* ``from P import name`` where P resolves ``name`` lazily (a PEP 562 ``__getattr__`` over a
  ``{"name": "B"}`` table, as ``reidcore.data``, ``reidcore.evaluation`` and
  ``reidcore.api`` do): an edge to P *and* to B, since that is what runs;
* **package ``__init__`` edges.** Importing ``a.b.c`` first runs the ``__init__`` of
  ``a`` and ``a.b``, so A also gets an edge to each package above B, except the packages
  above A itself: those are always initialised (or being initialised) before A's code
  runs, so importing a sibling through them runs nothing new. Counting those would report
  the harmless "``__init__`` imports a submodule that imports a sibling" pattern as a
  cycle. An explicit ``from a import name`` to an enclosing package still counts: it
  reads a name that a half-initialised ``__init__`` may not have defined yet.

Not counted: imports under ``if TYPE_CHECKING:`` (never run; with ``from __future__
import annotations`` the names are strings), and registry build targets such as
``"reidcore.data.synth:build"`` in component specs: they are data, resolved by the registry
only when a component is built, and the graph is about what importing a module runs. An
attribute read on an imported package (``import reidcore.data as d; d.TestSet``) that
triggers a lazy import is not seen either; the core spells these as ``from`` imports.
"""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "reidcore"
Edge = tuple[str, str]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Nodes under the body of ``if TYPE_CHECKING:`` (its ``else`` branch does run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                skipped |= {id(child) for child in ast.walk(statement)}
    return skipped


def _lazy_table(tree: ast.Module, modules: set[str]) -> dict[str, str]:
    """``name -> module`` of a PEP 562 module: module-level dicts of string to module."""
    if not any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body):
        return {}
    table: dict[str, str] = {}
    for node in tree.body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if isinstance(value, ast.Dict):
            for key, target in zip(value.keys, value.values, strict=True):
                if (isinstance(key, ast.Constant) and isinstance(target, ast.Constant)
                        and target.value in modules):
                    table[key.value] = target.value
    return table


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


class ImportGraph:
    """The run-time import graph of the reidcore package (see the module docstring)."""

    def __init__(self, root: Path = ROOT):
        self.root = root
        self.paths = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
        self.modules = set(self.paths)
        self.trees = {name: ast.parse(path.read_text(encoding="utf-8"), str(path))
                      for name, path in self.paths.items()}
        self.lazy = {name: _lazy_table(tree, self.modules) for name, tree in self.trees.items()}
        self.lines: dict[Edge, int] = {}  # the first line of each edge, for messages
        self.edges: dict[str, set[str]] = {name: set() for name in self.modules}
        for name in sorted(self.modules):
            self._read(name)

    def _add(self, source: str, target: str, line: int) -> None:
        if target == source:
            return
        if target in self.modules or target.split(".")[0].startswith("reid_plugin_"):
            self.edges[source].add(target)
            self.lines.setdefault((source, target), line)

    def _add_import(self, source: str, target: str, line: int) -> None:
        """``source`` imports module ``target``: that runs the packages above it too."""
        self._add(source, target, line)
        own = set(_ancestors(source)) | ({source} if self._is_package(source) else set())
        for package in _ancestors(target):
            if package not in own:
                self._add(source, package, line)

    def _is_package(self, module: str) -> bool:
        return module in self.paths and self.paths[module].name == "__init__.py"

    def _read(self, name: str) -> None:
        tree = self.trees[name]
        skipped = _type_checking_nodes(tree)
        package = name if self._is_package(name) else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self._add_import(name, alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    if candidate in self.modules:  # from package import submodule
                        self._add_import(name, candidate, node.lineno)
                        continue
                    self._add_import(name, base, node.lineno)
                    lazy = self.lazy.get(base, {}).get(alias.name)
                    if lazy is not None:
                        self._add_import(name, lazy, node.lineno)
            elif (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module")
                  and node.args and isinstance(node.args[0], ast.Constant)):
                self._add_import(name, str(node.args[0].value), node.lineno)

    def where(self, source: str, target: str) -> str:
        """``reidcore/x.py:12``: where ``source`` imports ``target``."""
        path = self.paths[source].relative_to(self.root.parent)
        return f"{path}:{self.lines[(source, target)]}"

    def describe(self, chain: list[str]) -> str:
        """A chain of modules as ``a -> b (a.py:3) -> c (b.py:7)``."""
        steps = chain[:1] + [f"{b} ({self.where(a, b)})" for a, b in pairwise(chain)]
        return " -> ".join(steps)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]`` (depth-first, in sorted order), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def find_path(graph: dict[str, set[str]], start: str, goal_prefixes: tuple[str, ...]
              ) -> list[str] | None:
    """The shortest import chain from ``start`` to a module under one of the prefixes."""
    previous: dict[str, str] = {}
    queue, seen = [start], {start}
    while queue:
        node = queue.pop(0)
        for target in sorted(graph.get(node, ())):
            if target in seen:
                continue
            seen.add(target)
            previous[target] = node
            if target == goal_prefixes or target.startswith(goal_prefixes):
                chain = [target]
                while chain[-1] != start:
                    chain.append(previous[chain[-1]])
                return chain[::-1]
            queue.append(target)
    return None


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return ImportGraph()


def test_the_graph_sees_function_level_lazy_and_package_imports(graph):
    edges = graph.edges
    assert "reidcore.engine.extract" in edges["reidcore.engine.commands"]  # inside a function
    # `from reidcore.evaluation import rank_metrics` runs evaluation.ranking (PEP 562)
    assert graph.lazy["reidcore.evaluation"]["rank_metrics"] == "reidcore.evaluation.ranking"
    # importing reidcore.data.x from outside runs the reidcore.data package first; a module
    # inside reidcore.engine gets no edge to reidcore.engine for importing a sibling
    assert "reidcore.data" in edges["reidcore.engine.extract"]
    assert "reidcore.engine" not in edges["reidcore.engine.chain"]
    # TYPE_CHECKING-only imports are not edges
    assert "reidcore.engine.context" not in edges["reidcore.api"]


def test_no_import_cycle_in_the_core(graph):
    cycle = find_cycle(graph.edges)
    assert cycle is None, "import cycle: " + graph.describe(cycle or [])


@pytest.mark.parametrize("layer, forbidden", [
    (("reidcore.evaluation", "reidcore.data"),
     ("reidcore.engine", "reidcore.plugins", "reidcore.cli", "reidcore.methods")),
    (("reidcore.evaluation",), ("reidcore.data.loaders",)),
])
def test_evaluation_and_data_stay_below_the_engine(graph, layer, forbidden):
    """Direct imports and chains through other modules (evaluation -> x -> engine) alike."""
    offending = []
    for module in sorted(m for m in graph.modules if _under(m, layer)):
        chain = find_path(graph.edges, module, forbidden)
        if chain is not None:
            offending.append(graph.describe(chain))
    assert not offending, "imports above its layer:\n" + "\n".join(offending)


def test_the_core_imports_no_plugin(graph):
    offending = [graph.describe([module, target]) for module, targets in graph.edges.items()
                 for target in sorted(targets) if target.startswith("reid_plugin_")]
    assert not offending, "the core imports a plugin:\n" + "\n".join(offending)


def test_cycles_and_chains_are_reported_module_by_module():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph = {"x": {"y"}, "y": {"z.engine.w"}, "z.engine.w": set()}
    assert find_path(graph, "x", ("z.engine",)) == ["x", "y", "z.engine.w"]
    assert find_path(graph, "y", ("q",)) is None


def test_package_edges_follow_what_python_runs(tmp_path):
    """A package importing its submodule, which imports a sibling through the package, is
    no cycle; a module outside that imports the submodule runs the package first."""
    pkg = tmp_path / "reidcore" / "pkg"
    pkg.mkdir(parents=True)
    (tmp_path / "reidcore" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from reidcore.pkg.a import A\n")
    (pkg / "a.py").write_text("from reidcore.pkg import b\nA = 1\n")
    (pkg / "b.py").write_text("def f():\n    from reidcore.outside import g\n")
    (tmp_path / "reidcore" / "outside.py").write_text(
        "import importlib\ndef g():\n    importlib.import_module('reidcore.pkg.b')\n")
    graph = ImportGraph(tmp_path / "reidcore")
    assert graph.edges["reidcore.pkg.a"] == {"reidcore.pkg.b"}
    assert graph.edges["reidcore.outside"] == {"reidcore.pkg.b", "reidcore.pkg"}
    cycle = find_cycle(graph.edges)
    assert cycle == ["reidcore.outside", "reidcore.pkg", "reidcore.pkg.a", "reidcore.pkg.b",
                     "reidcore.outside"]
    assert graph.describe(cycle[:2]) == (
        "reidcore.outside -> reidcore.pkg (reidcore/outside.py:3)")


def test_type_checking_relative_lazy_and_plugin_imports(tmp_path):
    """The ``if TYPE_CHECKING:`` body is skipped and its ``else`` kept; relative imports
    resolve from the module's package; a PEP 562 name adds an edge to the module behind it;
    a ``reid_plugin_*`` import is kept as an edge (for the no-plugin rule)."""
    core = tmp_path / "reidcore"
    (core / "sub").mkdir(parents=True)
    (core / "__init__.py").write_text("")
    (core / "typed.py").write_text("")
    (core / "fallback.py").write_text("")
    (core / "behind.py").write_text("")
    (core / "lazy.py").write_text(
        '_NAMES = {"Thing": "reidcore.behind"}\n'
        "def __getattr__(name):\n    raise AttributeError(name)\n")
    (core / "sub" / "__init__.py").write_text("")
    (core / "sub" / "near.py").write_text("")
    (core / "sub" / "user.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from reidcore import typed\n"
        "else:\n    from reidcore import fallback\n"
        "from . import near\n"
        "from ..lazy import Thing\n"
        "import reid_plugin_x.plugin\n")
    edges = ImportGraph(core).edges["reidcore.sub.user"]
    assert edges == {"reidcore.fallback", "reidcore.sub.near", "reidcore.lazy",
                     "reidcore.behind", "reid_plugin_x", "reid_plugin_x.plugin"}

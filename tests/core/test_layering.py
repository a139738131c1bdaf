"""The core's import graph: no cycles, evaluation and data below the engine, no plugin.

Every ``import`` in a module counts, function-level ones too (a lazy import is still a
dependency). ``if TYPE_CHECKING:`` blocks do not: they never run. An edge goes to the
module imported, and ``from package import name`` to ``package.name`` when that is a
module. A package's ``__init__`` is a module like any other, so importing
``reidcore.engine.x`` does not count as importing the ``reidcore.engine`` package's code."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "reidcore"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for child in ast.walk(node)}
    return skipped


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The reidcore modules (and reid_plugin_* names) that ``path`` imports at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skipped = _type_checking_nodes(tree)
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
    return {m for m in found if m in modules or m.split(".")[0].startswith("reid_plugin_")}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(ROOT.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
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


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "reidcore.engine.runner" in graph["reidcore.engine.chain"]  # imported in a function


def test_no_import_cycle_in_the_core():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_evaluation_and_data_stay_below_the_engine():
    forbidden = ("reidcore.engine", "reidcore.plugins", "reidcore.cli", "reidcore.methods")
    offending = [f"{module} imports {target}" for module, targets in import_graph().items()
                 if module.startswith(("reidcore.evaluation", "reidcore.data"))
                 for target in targets if target.startswith(forbidden)]
    assert not offending, "\n".join(offending)


def test_the_core_imports_no_plugin():
    offending = [f"{module} imports {target}" for module, targets in import_graph().items()
                 for target in targets if target.startswith("reid_plugin_")]
    assert not offending, "\n".join(offending)


def test_find_cycle_reports_the_chain():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None

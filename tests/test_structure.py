"""The package's structure, read from its source: imports go one way (no module imports one
that imports it back, directly or around a loop, lazy imports inside functions included), and no
function is longer than 80 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import sorlab

PACKAGE = Path(sorlab.__file__).parent
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(node: ast.AST, modules: dict[str, Path]) -> set[str]:
    """Package modules an import statement names (`from a import b` names a.b if b is one)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        found = {f"{node.module}.{a.name}" for a in node.names} & set(modules)
        rest = [a for a in node.names if f"{node.module}.{a.name}" not in modules]
        if rest and node.module in modules:
            found.add(node.module)
        return found
    return set()


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        graph[name] = {m for node in ast.walk(tree) for m in _imported(node, modules)} - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert "sorlab.training.cli" in graph and graph["sorlab.training.cli"]  # the walk sees imports
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_agent_imports_another_agent():
    graph = import_graph()
    agents = {m for m in graph if m.startswith("sorlab.agents.") and ".agents._lib" not in m}
    assert "sorlab.agents.sorl" in agents
    for module in agents:
        assert not graph[module] & (agents - {module}), f"{module} imports {graph[module] & agents}"


def test_training_and_evaluation_meet_only_in_the_training_cli():
    graph = import_graph()
    for module, targets in graph.items():
        if module.startswith("sorlab.evaluation"):
            assert not any(t.startswith("sorlab.training") for t in targets), module
        if module.startswith("sorlab.training") and module != "sorlab.training.cli":
            assert not any(t.startswith("sorlab.evaluation") for t in targets), module


def test_no_function_is_longer_than_80_lines():
    long = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert long == []

"""The ablation package's imports form no circle, lazy imports included (the orchestrators
— ``ablate``, ``stability``, ``phase`` — import the workers — ``units``, ``executors``,
``drift``, ``recipe`` — never the other way round)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pdelang" / "lab" / "ablation"


def _imports() -> dict[str, set[str]]:
    """module → the pdelang.lab.ablation modules it imports anywhere in its body."""
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        name = path.stem
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("pdelang.lab.ablation."):
                found.add(node.module.split(".")[3])
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[3] for a in node.names
                             if a.name.startswith("pdelang.lab.ablation."))
        graph[name] = found - {name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_ablation_package_has_no_import_circle():
    cycle = _cycle(_imports())
    assert cycle is None, "import circle: " + " → ".join(cycle)


def test_the_workers_never_import_the_orchestrators():
    graph = _imports()
    for worker in ("units", "executors", "drift", "recipe", "recipe_settings", "train",
                   "tasks"):
        assert not graph[worker] & {"ablate", "stability", "phase"}, worker


def test_a_circle_is_found_when_there_is_one():
    """Control: the detector sees a planted circle, lazy or not."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_another_ablation_module_s_private_names():
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("pdelang.lab.ablation."):
                offenders += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_")]
    assert not offenders, offenders

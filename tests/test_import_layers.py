"""The package's module-level imports form no cycle and respect the layers.

Layers, top to bottom: cli → runs → analysis → training → models, data, config. Only
``mtlkit.runs`` (and the command line, tuning above it) knows ``Config`` and run directories:
``training/`` and ``analysis/`` import neither ``mtlkit.config`` nor ``mtlkit.runs``. Read from
the source with :mod:`ast` (imports at the top of each module; imports inside functions are
deferred on purpose and cannot form an import-time cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "mtlkit"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """The mtlkit modules ``path`` imports at import time (not under ``TYPE_CHECKING``)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: _top_level_imports(path, modules) - {name} for name, path in paths.items()}


def _with_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Importing ``a.b.c`` first imports ``a.b``: add those edges."""
    full = {name: set(deps) for name, deps in graph.items()}
    for name in graph:
        parent = name.rpartition(".")[0]
        if parent in graph:
            full[name].add(parent)
    return full


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert "mtlkit.runs.train" in graph  # the graph was read


LOWER_LAYERS_MUST_NOT_IMPORT = {
    "mtlkit.training": ("mtlkit.config", "mtlkit.runs", "mtlkit.cli", "mtlkit.analysis"),
    "mtlkit.analysis": ("mtlkit.runs", "mtlkit.cli", "mtlkit.config"),
    "mtlkit.runs": ("mtlkit.cli", "mtlkit.tuning"),
}


def test_lower_layers_do_not_import_upper_ones():
    graph = _with_packages(_graph())
    wrong = []
    for name, deps in graph.items():
        for layer, forbidden in LOWER_LAYERS_MUST_NOT_IMPORT.items():
            if name == layer or name.startswith(layer + "."):
                wrong += [
                    f"{name} imports {d}" for d in deps if d.startswith(forbidden) and d != layer
                ]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_function_level_import_reaches_upward_from_training_or_analysis():
    """``analysis/`` used to import ``training/run.py`` inside functions; nothing may now."""
    offenders = []
    for layer in ("training", "analysis"):
        for path in (PACKAGE / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    ("mtlkit.runs", "mtlkit.cli", "mtlkit.config")
                ):
                    offenders.append(f"{path.relative_to(SRC)}: {node.module}")
    assert not offenders, offenders

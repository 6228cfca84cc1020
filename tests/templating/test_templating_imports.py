"""The templating package stays self-contained and layered: its modules import one another without a
cycle, never through the package's own ``__init__``, and nothing else of ``alerting`` but errors and
durations."""

from __future__ import annotations

import ast
from pathlib import Path

import alerting.templating

PACKAGE = "alerting.templating"
ALLOWED_OUTSIDE = {"alerting.errors", "alerting.durations"}
MODULES = sorted(Path(alerting.templating.__file__).parent.glob("*.py"))


def _imported(path: Path) -> set[str]:
    """Every module named by an import statement of ``path``, nested imports included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {name for name in names if name == "alerting" or name.startswith("alerting.")}


def _graph() -> dict[str, set[str]]:
    prefix = PACKAGE + "."
    return {
        path.stem: {name.removeprefix(prefix) for name in _imported(path) if name.startswith(prefix)}
        for path in MODULES
    }


def test_no_module_imports_the_package_itself() -> None:
    offenders = [path.name for path in MODULES if PACKAGE in _imported(path)]
    assert offenders == []


def test_only_errors_and_durations_are_imported_from_the_rest_of_alerting() -> None:
    outside = {
        path.name: sorted(name for name in _imported(path) - ALLOWED_OUTSIDE if not name.startswith(PACKAGE))
        for path in MODULES
    }
    assert {name: found for name, found in outside.items() if found} == {}


def test_module_imports_form_no_cycle() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import cycle: " + " -> ".join((*path, module))
        if module in done:
            return
        for dependency in sorted(graph.get(module, set())):
            visit(dependency, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())

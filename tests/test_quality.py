"""The codebase stays mypy-strict and ruff clean (the checks a reviewer would run)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_mypy_strict() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "nbstream", "tests",
                             "benchmarks"], cwd=ROOT, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def import_graph() -> dict[str, set[str]]:
    """Which nbstream module imports which (TYPE_CHECKING imports included)."""
    files = {}
    for path in (ROOT / "nbstream").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        files[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.startswith("nbstream"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    graph[name].add(sub if sub in files else node.module)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name.startswith("nbstream"))
    return graph


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        for target in sorted(graph.get(name, ())):
            if target in path:
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in seen:
                seen.add(target)
                visit(target, [*path, target])

    seen: set[str] = set()
    for start in sorted(graph):
        if start not in seen:
            seen.add(start)
            visit(start, [start])
    assert cycles == []


def test_no_module_is_too_long() -> None:
    """One concern per file: about 400 lines at most (docs/architecture.md)."""
    long = {str(path.relative_to(ROOT)): n for path in (ROOT / "nbstream").rglob("*.py")
            if (n := len(path.read_text().splitlines())) > 450}
    assert long == {}

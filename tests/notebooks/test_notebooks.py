"""Every teaching notebook runs top to bottom in a fresh kernel, in under a minute, cleanly.

This is what ``pytest --nbmake notebooks/`` checks, plus: no output on stderr (a
warning there means something was left running or closed badly) and outputs
stripped in the repository.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
WORKSHOP = ["01-quickstart", "02-message-design", "03-connection-lifecycle",
            "04-errors-and-limits", "05-memory", "06-load-testing",
            "09-when-the-network-misbehaves"]
BUDGET = 60.0
"""Seconds a notebook may take, kernel start included."""


def run(path: Path) -> tuple[nbformat.NotebookNode, float]:
    """Execute a notebook in a fresh kernel from its own folder; returns it and the time."""
    notebook = nbformat.read(path, as_version=4)
    started = time.monotonic()
    NotebookClient(notebook, timeout=int(BUDGET), kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook, time.monotonic() - started


def test_the_workshop_path_is_all_there() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == WORKSHOP


@pytest.mark.parametrize("name", WORKSHOP)
def test_outputs_are_stripped_in_the_repository(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.timeout(2 * BUDGET)
@pytest.mark.parametrize("name", WORKSHOP)
def test_runs_top_to_bottom_within_a_minute(name: str) -> None:
    notebook, seconds = run(NOTEBOOKS / f"{name}.ipynb")
    assert seconds < BUDGET
    stderr = [out.text for cell in notebook.cells for out in cell.get("outputs", [])
              if out.get("name") == "stderr"]
    assert stderr == []

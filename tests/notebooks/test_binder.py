"""Binder's environment works: a fresh venv from binder/requirements.txt alone runs the quickstart.

repo2docker runs ``pip install -r binder/requirements.txt`` from the repository's root
with ``binder/runtime.txt``'s Python; this test does the same in a new virtual
environment, then executes the quickstart with that environment's own nbclient and
kernel, and checks that the kernel really was the new environment's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "notebooks" / "01-quickstart.ipynb"

RUN = """
import sys
import nbformat
from nbclient import NotebookClient

notebook = nbformat.read(sys.argv[1], as_version=4)
notebook.cells.append(nbformat.v4.new_code_cell(
    "import sys, nbstream, ipywidgets, anywidget\\n"
    "print(sys.prefix, nbstream.__file__, sep='\\\\n')"))
NotebookClient(notebook, timeout=60, kernel_name="python3").execute()
print(notebook.cells[-1].outputs[0]["text"])
"""


def test_runtime_is_a_python_the_package_supports() -> None:
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-3.") and int(runtime.split(".")[1]) >= 11


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_quickstart_runs_in_a_fresh_venv_from_binder_requirements(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "VIRTUAL_ENV": str(venv), "JUPYTER_PATH": "", "PYTHONPATH": ""}
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", "-r", "binder/requirements.txt"],
                   cwd=ROOT, env=env, check=True, timeout=900)
    run = subprocess.run([bin_dir / "python", "-c", RUN, str(QUICKSTART)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    prefix, module = run.stdout.strip().splitlines()[-2:]
    assert Path(prefix) == venv
    assert Path(module).is_relative_to(venv)  # installed from the repo, not the editable one

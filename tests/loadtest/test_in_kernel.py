"""load_test in a real Jupyter kernel: sync call, await, background test, processes."""

import nbformat
import pytest
from nbclient import NotebookClient

CELLS = [
    'import nbstream\nserver = nbstream.serve("echo")',
    "result = nbstream.load_test(server, connections=20, messages=5)\n"
    "assert result.messages['error'].isna().all()\n"
    "result",
    "result = await nbstream.aload_test(server, connections=5, rate=100, duration=0.5,\n"
    "                                   progress=False)\n"
    "len(result.messages)",
    "test = nbstream.start_load_test(server, connections=4, messages=20, progress=False)\n"
    "test",
    "result = test.result(timeout=30)\n"
    "(test.progress().done, test.progress().completed)",
    "result = nbstream.load_test(server, connections=4, messages=5, processes=2,\n"
    "                            progress=False)\n"
    "int(result.summary().loc['completed', 'value'])",
    "server.stop()",
]


@pytest.mark.timeout(180)
def test_load_test_in_a_kernel() -> None:
    notebook = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    notebook.cells = [nbformat.v4.new_code_cell(source)  # type: ignore[no-untyped-call]
                      for source in CELLS]
    NotebookClient(notebook, timeout=60, kernel_name="python3").execute()
    outputs = [cell.outputs for cell in notebook.cells]
    shown = outputs[1][-1]["data"]
    assert "<table" in shown["text/html"] and "throughput" in shown["text/html"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for o in outputs[1])  # the tqdm bar is a widget in a notebook
    assert outputs[2][0]["data"]["text/plain"] == "50"
    assert "running" in outputs[3][0]["data"]["text/html"]
    assert outputs[4][0]["data"]["text/plain"] == "(True, 80)"
    assert outputs[5][0]["data"]["text/plain"] == "20"

"""nbstream in a real Jupyter kernel, cell by cell, as a notebook user runs it."""

import nbformat
import pytest
from nbclient import NotebookClient

CELLS = [
    "import time\nimport nbstream\nserver = nbstream.serve()\nserver.url",
    "client = nbstream.connect(server.url)",
    'replies = client.chat("hello", timeout=10)\n'
    'assert replies[-1].type == "end"\n'
    "[m.type for m in replies]",
    'replies = await client.achat("what is 6*7?", timeout=10)\n'
    "types = [m.type for m in replies]\n"
    'assert types[:2] == ["tool_use", "tool_result"], types\n'
    "types",
    "time.sleep(1)\n"
    'replies = client.chat("still there after a blocking cell?", timeout=10)\n'
    'assert replies[-1].type == "end"\n'
    "len(replies)",
    "client.close()\nreport = server.stop()\nprint(report)\nassert not server.running",
]


@pytest.mark.timeout(180)
def test_serve_connect_chat_and_stop_in_a_kernel() -> None:
    notebook = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    notebook.cells = [nbformat.v4.new_code_cell(source)  # type: ignore[no-untyped-call]
                      for source in CELLS]
    NotebookClient(notebook, timeout=60, kernel_name="python3").execute()
    outputs = [cell.outputs for cell in notebook.cells]
    assert "ws://127.0.0.1:" in outputs[0][0]["data"]["text/plain"]
    assert "tool_use" in outputs[3][0]["data"]["text/plain"]
    assert "stopped in" in outputs[5][0]["text"]

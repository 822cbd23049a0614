"""The ``nbstream serve`` command: health, metrics, JSON logs with ids, graceful SIGTERM."""

import json
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

import nbstream
from tests.conftest import TIMEOUT


@pytest.fixture
def serve_process() -> "subprocess.Popen[str]":
    process = subprocess.Popen(
        [sys.executable, "-m", "nbstream", "-v", "--log-format", "json", "serve",
         "--port", "0", "--handler", "echo", "--max-connections-per-user", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield process
    if process.poll() is None:
        process.kill()
        process.wait(TIMEOUT)


def test_serve_answers_health_metrics_logs_json_and_stops_on_sigterm(
    serve_process: "subprocess.Popen[str]",
) -> None:
    assert serve_process.stdout is not None and serve_process.stderr is not None
    first = serve_process.stdout.readline()
    url = re.search(r"ws://\S+", first)
    assert url, first
    base = url.group().replace("ws://", "http://").removesuffix("/ws")
    with urllib.request.urlopen(base + "/health", timeout=TIMEOUT) as response:
        assert json.load(response)["status"] == "ok"
    with urllib.request.urlopen(base + "/metrics", timeout=TIMEOUT) as response:
        assert b"nbstream_connections" in response.read()

    client = nbstream.connect(url.group(), user="zoe")
    assert client.chat("hi", timeout=TIMEOUT)[0].text == "hi"
    with pytest.raises(nbstream.StreamClosed):  # the second connection of zoe is refused
        nbstream.connect(url.group(), user="zoe")
    client.close()

    serve_process.send_signal(signal.SIGTERM)
    assert serve_process.wait(TIMEOUT) == 0
    records = [json.loads(line) for line in serve_process.stderr.read().splitlines()
               if line.startswith("{")]
    refused = [r for r in records if r["message"].startswith("refused a connection")]
    assert refused and refused[0]["user"] == "zoe" and refused[0]["session_id"]
    assert all({"levelname", "name", "asctime"} <= set(r) for r in records)

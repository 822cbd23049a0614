"""``nbstream demo``, the README's first command, runs end to end (smaller load test)."""

import subprocess
import sys


def test_demo_runs_end_to_end() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nbstream", "demo", "--connections", "20", "--messages", "2"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[tool_use calculator" in out and "[tool_result 42]" in out
    assert "chat round trips" in out and "chats/s" in out
    assert "20 connections x 2 chats" in out
    requests = next(line for line in out.splitlines() if line.startswith("requests"))
    errors = next(line for line in out.splitlines() if line.startswith("errors "))
    assert requests.split()[1] == "40" and errors.split()[1] == "0"
    assert "stopped in" in out

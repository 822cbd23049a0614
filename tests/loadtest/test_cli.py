"""``nbstream load URL``: prints the summary table and writes the rows to parquet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import nbstream
from nbstream.cli import main


@pytest.fixture
def server() -> Iterator[nbstream.Server]:
    server = nbstream.serve("echo")
    yield server
    server.stop(timeout=1.0)


def test_load_prints_the_summary_and_writes_parquet(
        server: nbstream.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.parquet"
    code = main(["load", server.url, "--connections", "3", "--messages", "4",
                 "--no-progress", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "closed model, 3 connections x 4 messages" in printed
    assert "throughput" in printed and "latency_p99" in printed and str(out) in printed
    result = nbstream.LoadResult.read_parquet(out)
    assert len(result.messages) == 12 and result.parameters["connections"] == 3


def test_open_model_and_raw_frames_from_the_command_line(
        server: nbstream.Server, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["load", server.url, "--connections", "2", "--rate", "50", "--duration",
                 "0.2", "--raw", "--no-progress"])
    assert code == 0  # the server answers raw text with an INVALID_MESSAGE error: a reply
    assert "open model, 50 msg/s over 2 connections" in capsys.readouterr().out


def test_bad_arguments_and_dead_targets(closed_port_url: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "http://127.0.0.1:1/", "--no-progress"]) == 2
    assert "ws://" in capsys.readouterr().err
    assert main(["load", closed_port_url, "--connections", "1", "--messages", "1",
                 "--no-progress"]) == 1
    assert "CONNECTION_REFUSED" in capsys.readouterr().out

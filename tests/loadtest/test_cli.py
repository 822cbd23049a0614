"""``nbstream load URL``: prints the summary, writes the rows to parquet (checking the
path first, keeping the rows when it fails anyway) and judges the run (exit status)."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import pytest

import nbstream
from nbstream.cli import main
from nbstream.protocol import Message, Session


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


@pytest.mark.parametrize("where", ["missing directory", "directory"])
def test_an_out_path_that_cannot_be_written_stops_before_the_run(
        server: nbstream.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        where: str) -> None:
    out = tmp_path / "nowhere" / "x.parquet" if where == "missing directory" else tmp_path
    code = main(["load", server.url, "--connections", "1", "--messages", "1",
                 "--no-progress", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 2 and printed.out == ""  # nothing ran: no summary
    assert printed.err.count("\n") == 1 and str(out) in printed.err
    assert server.health()["connections"] == 0 and list(tmp_path.iterdir()) == []


def test_results_are_kept_when_the_out_path_fails_at_the_end(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doomed = tmp_path / "doomed"
    doomed.mkdir()

    async def clean_up_early(message: Message, session: Session) -> AsyncGenerator[str, None]:
        shutil.rmtree(doomed, ignore_errors=True)  # e.g. a temp cleaner, mid-run
        yield "ok"

    server = nbstream.serve(clean_up_early)
    try:
        code = main(["load", server.url, "--connections", "2", "--messages", "3",
                     "--no-progress", "--out", str(doomed / "run.parquet")])
    finally:
        server.stop(timeout=1.0)
    printed = capsys.readouterr()
    assert code == 3 and "latency_p99" in printed.out
    (line,) = printed.err.splitlines()
    kept = Path(line.rsplit("the results are in ", 1)[1])
    try:
        assert f"could not write {doomed / 'run.parquet'}" in line
        assert len(nbstream.LoadResult.read_parquet(kept).messages) == 6
    finally:
        kept.unlink()


def test_refused_connections_fail_the_run_unless_errors_are_accepted(
        capsys: pytest.CaptureFixture[str]) -> None:
    server = nbstream.serve("echo", max_connections=1)
    holder = nbstream.connect(server.url)  # takes the one slot
    try:
        args = ["load", server.url, "--connections", "10", "--messages", "2",
                "--no-progress"]
        assert main(args) == 1
        printed = capsys.readouterr()
        assert re.search(r"connections_failed\s+10\n", printed.out)
        assert re.search(r"errors\.TOO_MANY_CONNECTIONS\s+\d+", printed.out)
        assert "nbstream load: failed: 10 of 10 connections failed (100 %; allowed 0 %)" \
            in printed.err
        assert "of 20 messages failed" in printed.err
        assert main([*args, "--accept-errors"]) == 0
        assert main([*args, "--max-error-rate", "0.5"]) == 1
        assert main([*args, "--max-error-rate", "1"]) == 0
        capsys.readouterr()
        assert main([*args, "--accept-errors", "--max-p99", "0.5"]) == 1
        assert "no message completed" in capsys.readouterr().err
    finally:
        holder.close()
        server.stop(timeout=1.0)


def test_latency_thresholds_decide_the_exit_status(
        server: nbstream.Server, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["load", server.url, "--connections", "2", "--messages", "5", "--no-progress"]
    assert main([*args, "--max-p99", "30"]) == 0
    assert main([*args, "--max-p99", "0.000001"]) == 1
    assert re.search(r"failed: p99 latency [\d.]+ ms is above 0.001 ms",
                     capsys.readouterr().err)


@pytest.mark.parametrize(("flag", "value"), [("--max-error-rate", "2"),
                                            ("--max-error-rate", "nan"),
                                            ("--max-p99", "0"), ("--max-p99", "inf")])
def test_bad_thresholds_are_usage_errors(flag: str, value: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["load", "ws://127.0.0.1:1/ws", flag, value])
    assert exited.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_help_documents_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["load", "--help"])
    text = capsys.readouterr().out
    assert "exit status:" in text and "--max-error-rate" in text and "--max-p99" in text


async def _echo_value(message: Message, session: Session) -> AsyncGenerator[object, None]:
    yield message.data


@pytest.mark.parametrize("protocol", ["json", "text", "raw"])
def test_a_scenario_over_any_protocol_from_the_command_line(
        protocol: str, capsys: pytest.CaptureFixture[str]) -> None:
    server = nbstream.serve(_echo_value, protocol=protocol)
    try:
        code = main(["load", server.url, "--protocol", protocol, "--scenario",
                     "tests.loadtest.flows:echo_once", "--iterations", "3",
                     "--connections", "2", "--no-progress"])
    finally:
        server.stop(timeout=1.0)
    printed = capsys.readouterr().out
    assert code == 0
    assert f"scenario echo_once, closed model, 2 users x 3 iterations ({protocol} protocol" \
        in printed
    assert re.search(r"step\.echo\.count\s+6\n", printed)
    assert re.search(r"check\.echoed\.passes\s+6\n", printed)


def test_a_scenario_that_cannot_be_found_is_a_usage_error(
        server: nbstream.Server, capsys: pytest.CaptureFixture[str]) -> None:
    for spec, says in (("tests.loadtest.flows", "MODULE:FUNCTION"),
                       ("no_such_module:flow", "cannot import no_such_module"),
                       ("tests.loadtest.flows:missing", "has no missing")):
        assert main(["load", server.url, "--scenario", spec, "--no-progress"]) == 2
        assert says in capsys.readouterr().err

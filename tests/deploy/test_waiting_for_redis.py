"""``nbstream serve`` started before its Redis (pods start in any order): it retries with
bounded, logged backoff instead of exiting at once and crash-looping."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from pathlib import Path

import pytest

from tests.cli_process import NbstreamProcess
from tests.conftest import TIMEOUT
from tests.deploy.conftest import HEALTH_PATH, Redis
from tests.deploy.pod import free_port


def serve(redis_port: int, wait: float) -> NbstreamProcess:
    return NbstreamProcess(["serve", "--port", "0", "--handler", "echo", "--backplane",
                            f"redis://127.0.0.1:{redis_port}/0", "--log-format", "json"],
                           env={**os.environ, "NBSTREAM_BACKPLANE_WAIT": str(wait)})


def attempts(server: NbstreamProcess) -> list[dict[str, object]]:
    return [r for r in server.records() if "backplane not reachable" in str(r["message"])]


@pytest.mark.timeout(120)
def test_the_server_starts_once_redis_does(redis_binary: str, tmp_path: Path) -> None:
    redis_port = free_port()
    server = serve(redis_port, wait=60)
    redis = None
    try:
        server.wait_for(lambda line: "(attempt 2)" in line)
        redis = Redis([redis_binary, "--port", str(redis_port), "--bind", "127.0.0.1",
                       "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                      redis_port, "", tmp_path / "redis.log")
        line = server.wait_for(lambda line: "serving ws://" in line)
        url = re.search(r"ws://[^\s\"]+", line)
        assert url, line
        health_url = url.group().replace("ws://", "http://").replace("/ws", HEALTH_PATH)
        with urllib.request.urlopen(health_url, timeout=TIMEOUT) as response:
            assert json.load(response)["redis"] == "ok"
        assert server.stop() == 0
    finally:
        server.stop()
        if redis is not None:
            redis.stop()
    logged = attempts(server)
    assert len(logged) >= 2 and all(r["levelname"] == "WARNING" for r in logged)
    delays = [float(found[1]) for r in logged
              if (found := re.search(r"trying again in ([\d.]+) s", str(r["message"])))]
    assert len(delays) == len(logged) and all(0 < d <= 5.0 for d in delays), delays


@pytest.mark.timeout(60)
def test_the_server_gives_up_after_the_wait_with_status_1() -> None:
    started = time.monotonic()
    server = serve(free_port(), wait=1.5)
    assert server.wait(timeout=3 * TIMEOUT) == 1
    assert time.monotonic() - started >= 1.5
    (gave_up,) = [r for r in server.records() if "giving up after" in str(r["message"])]
    assert gave_up["levelname"] == "ERROR" and "cannot reach Redis" in str(gave_up["message"])
    assert attempts(server)


@pytest.mark.timeout(60)
def test_sigterm_while_waiting_stops_at_once_with_status_0() -> None:
    server = serve(free_port(), wait=600)
    server.wait_for(lambda line: "(attempt 1)" in line)
    stopped = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - stopped < TIMEOUT
    assert any("stopped before the backplane" in str(r["message"]) for r in server.records())

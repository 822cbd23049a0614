"""deploy/Dockerfile: what it copies and installs, whom it runs as, and its command, run."""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from nbstream import ServerOptions
from tests.conftest import TIMEOUT
from tests.deploy.conftest import (
    DEPLOY,
    HEALTH_PATH,
    METRICS_PATH,
    READY_PATH,
    ROOT,
    serve_args,
)
from tests.deploy.dockerfile import Stage, stages


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def seconds(duration: str) -> float:
    """A Dockerfile duration written in seconds, e.g. ``5s``."""
    assert duration.endswith("s") and not duration.endswith("ms"), duration
    return float(duration[:-1])


def healthcheck_url(image: Stage) -> str:
    """The one URL the HEALTHCHECK command fetches."""
    urls = re.findall(r"http://[^'\"\s]+", " ".join(image.healthcheck))
    assert len(urls) == 1, image.healthcheck
    return str(urls[0])


def run_healthcheck(image: Stage, image_port: int, port: int) -> int:
    """Run the image's HEALTHCHECK against ``port`` instead of ``image_port``; its exit code."""
    url = healthcheck_url(image)
    moved = url.replace(f":{image_port}/", f":{port}/")
    assert moved != url, url
    assert image.healthcheck[0] == "python", image.healthcheck
    argv = [sys.executable, *(arg.replace(url, moved) for arg in image.healthcheck[1:])]
    limit = seconds(image.healthcheck_options["timeout"])
    return subprocess.run(argv, capture_output=True, timeout=limit, check=False).returncode


def wait_until_answered(url: str, server: subprocess.Popen[bytes], log: Path,
                        limit: float) -> None:
    """Poll ``url`` until it answers 200; fail if the server exits or ``limit`` passes."""
    deadline = time.monotonic() + limit
    while True:
        assert server.poll() is None, f"server exited {server.returncode}: {log.read_text()}"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                assert response.status == 200
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def test_image_runs_as_a_numeric_non_root_user(image: Stage) -> None:
    # Numeric, so that Kubernetes' runAsNonRoot can check it without running the image.
    uid = image.user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, image.user


def test_image_exposes_its_port_and_checks_its_health_path(
    image: Stage, image_args: argparse.Namespace
) -> None:
    assert image.expose == [str(image_args.port)]
    url = urlsplit(healthcheck_url(image))
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", image_args.port, HEALTH_PATH)
    assert image_args.host == "0.0.0.0"


def test_venv_is_made_with_the_python_it_runs_on() -> None:
    build, final = stages(DEPLOY / "Dockerfile")
    assert build.base == final.base  # a venv points at its interpreter's exact path
    assert build.name and any(copy[0] == f"--from={build.name}" for copy in final.copies)


def test_build_stage_copies_the_package_and_installs_extras_that_exist() -> None:
    build = stages(DEPLOY / "Dockerfile")[0]
    sources = {source for copy in build.copies for source in copy[:-1]}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"pyproject.toml", project["readme"], "nbstream"} <= sources
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"  # an allow-list: only what it names reaches the build
    assert sources <= {line[1:].rstrip("/") for line in ignore if line.startswith("!")}

    installs = [m for run in build.runs for m in re.findall(r'"\.\[([^\]]+)\]"', run)]
    assert installs, build.runs
    extras = {extra.strip() for install in installs for extra in install.split(",")}
    assert extras <= set(project["optional-dependencies"]), extras


@pytest.mark.timeout(60)
def test_image_command_serves_health_and_stops_gracefully_on_sigterm(
    image: Stage, image_args: argparse.Namespace, tmp_path: Path
) -> None:
    port = free_port()
    argv = ["nbstream", *image.argv[1:]]
    argv[argv.index("--port") + 1] = str(port)
    args = serve_args(argv)
    assert args.port == port and vars(args) | {"port": image_args.port} == vars(image_args)
    command = [sys.executable, "-m", "nbstream", *argv[1:]]

    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_answered(base + HEALTH_PATH, server, log_path, limit=3 * TIMEOUT)
            with urllib.request.urlopen(base + HEALTH_PATH, timeout=TIMEOUT) as response:
                assert json.load(response)["status"] == "ok"
            with urllib.request.urlopen(base + READY_PATH, timeout=TIMEOUT) as response:
                assert json.load(response)["ready"] is True
            with urllib.request.urlopen(base + METRICS_PATH, timeout=TIMEOUT) as response:
                assert b"# TYPE" in response.read()
            assert run_healthcheck(image, image_args.port, port) == 0

            url = f"ws://127.0.0.1:{port}{args.path}"
            with connect(url, subprotocols=[Subprotocol("nbstream.v1")],
                         open_timeout=TIMEOUT) as ws:
                assert json.loads(ws.recv(TIMEOUT))["type"] == "welcome"
                server.send_signal(signal.SIGTERM)
                assert json.loads(ws.recv(TIMEOUT))["type"] == "server_shutdown"
                with pytest.raises(ConnectionClosedOK) as closed:
                    ws.recv(TIMEOUT)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
            assert server.wait(args.grace + ServerOptions().close_timeout) == 0
            assert run_healthcheck(image, image_args.port, port) != 0
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(TIMEOUT)

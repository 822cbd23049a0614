"""Real processes for scale-out runs: a private redis-server and ``nbstream serve`` nodes.

Shared by the tests in this folder and by benchmarks/scaleout.py. Everything listens
on 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

import nbstream

STARTUP = 15.0
"""Seconds a process may take to start listening."""

SOURCE = Path(nbstream.__file__).resolve().parent.parent
"""Where the nbstream under test lives: server processes run the same code."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class _Process:
    """A child process whose output goes to a log file (read it when a test fails)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None
               ) -> subprocess.Popen[bytes]:
        self._output = self.log.open("ab")
        self.process = subprocess.Popen(argv, stdout=self._output, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env)
        return self.process

    def _fail(self, what: str) -> RuntimeError:
        self.stop()
        return RuntimeError(f"{what}; its log ({self.log}):\n{self.log.read_text()[-3000:]}")

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process dies at once, as in a crash."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s. Safe to call twice."""
        self._end(signal.SIGTERM)

    def _end(self, sig: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(5.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5.0)
        if self._output is not None:
            self._output.close()
            self._output = None


class RedisServer(_Process):
    """A redis-server of our own on 127.0.0.1, without persistence (as a cache runs).

    ``stop()`` and ``start()`` again on the same port act as a Redis restart: every
    key is gone. ``options`` are more redis-server arguments (``["--maxmemory", "4mb"]``).
    """

    def __init__(self, log: Path, port: int | None = None, options: list[str] | None = None
                 ) -> None:
        super().__init__(log)
        self.port = port or free_port()
        self.options = options or []

    @staticmethod
    def binary() -> str | None:
        """Where redis-server is, or None."""
        return shutil.which("redis-server")

    @property
    def url(self) -> str:
        """The backplane URL of this Redis."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start and return once Redis answers PING.

        Raises:
            RuntimeError: if it does not answer within STARTUP seconds (log attached).
        """
        self._spawn([self.binary() or "redis-server", "--port", str(self.port), "--bind",
                     "127.0.0.1", "--save", "", "--appendonly", "no", *self.options])
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline and self.running:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise self._fail(f"redis-server on port {self.port} did not start")


class ServerProcess(_Process):
    """``python -m nbstream serve`` in a child process (a node of the deployment)."""

    def __init__(self, log: Path, backplane: str, *, port: int | None = None,
                 handler: str = "agent", options: dict[str, Any] | None = None) -> None:
        super().__init__(log)
        self.port = port or free_port()
        self.backplane = backplane
        self.handler = handler
        self.options = options or {}

    @property
    def url(self) -> str:
        """The WebSocket URL of this node."""
        return f"ws://127.0.0.1:{self.port}/ws"

    def health(self) -> dict[str, Any]:
        """``GET /health`` (raises OSError when nobody answers within a second)."""
        address = f"http://127.0.0.1:{self.port}/health"
        with urllib.request.urlopen(address, timeout=1.0) as response:
            decoded: dict[str, Any] = json.loads(response.read())
            return decoded

    def metrics(self) -> dict[str, float]:
        """``GET /metrics`` as {sample name: value} (samples with labels are left out)."""
        from prometheus_client.parser import text_string_to_metric_families

        address = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(address, timeout=1.0) as response:
            text = response.read().decode()
        return {sample.name: sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples if not sample.labels}

    def start(self) -> None:
        """Start and return once ``/health`` answers.

        Raises:
            RuntimeError: if it does not within STARTUP seconds (log attached).
        """
        flags = [f"--{name.replace('_', '-')}={value}" for name, value in self.options.items()]
        self._spawn([sys.executable, "-m", "nbstream", "serve", "--host", "127.0.0.1",
                     "--port", str(self.port), "--backplane", self.backplane,
                     "--handler", self.handler, *flags],
                    env={**os.environ, "PYTHONPATH": os.pathsep.join(
                        filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")]))})
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline and self.running:
            try:
                self.health()
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        raise self._fail(f"nbstream serve on port {self.port} did not start")

"""``python -m nbstream ...`` as a child process whose log lines a test can wait for."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nbstream
from tests.conftest import TIMEOUT

SOURCE = Path(nbstream.__file__).resolve().parent.parent
"""Where the nbstream under test lives: the child runs the same code."""


def child_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment) with the nbstream under test first
    on PYTHONPATH."""
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")]))
    return environment


def run_nbstream(args: Sequence[str], env: Mapping[str, str] | None = None,
                 timeout: float = 3 * TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``python -m nbstream ARGS`` to its end; its output and exit status."""
    return subprocess.run([sys.executable, "-m", "nbstream", *args], capture_output=True,
                          text=True, timeout=timeout, env=child_environment(env), check=False)


class NbstreamProcess:
    """The ``nbstream`` command in a child process; its stderr is read line by line.

    ``wait_for(predicate)`` returns the first line (old or new) that matches, within a
    deadline; ``stop()`` sends SIGTERM and returns the exit status. Safe to stop twice.
    """

    def __init__(self, args: Sequence[str], env: Mapping[str, str] | None = None,
                 executable: Sequence[str] = (sys.executable, "-m", "nbstream")) -> None:
        self.argv = [*executable, *args]
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True,
                                        env=child_environment(env))
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self._ended = False
        """The reader saw the end of stderr (its None is taken from the queue)."""
        self.output: list[str] = []
        """What it printed on stdout (complete once it has ended)."""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._output_reader = threading.Thread(target=self._read_output, daemon=True)
        self._output_reader.start()

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._new.put(line.rstrip("\n"))
        self._new.put(None)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 3 * TIMEOUT) -> str:
        """The first stderr line ``predicate`` accepts.

        Raises:
            AssertionError: with every line so far, if none does within ``timeout`` or
                the process ends first.
        """
        for earlier in self.lines:
            if predicate(earlier):
                return earlier
        deadline = time.monotonic() + timeout
        while not self._ended and (left := deadline - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self._ended = True
                break
            self.lines.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no such line from {self.argv} (exit status "
                             f"{self.process.poll()}); its stderr:\n" + "\n".join(self.lines))

    def records(self) -> list[dict[str, Any]]:
        """The JSON log records among the lines read so far."""
        return [json.loads(line) for line in self.lines if line.startswith("{")]

    def wait(self, timeout: float = 3 * TIMEOUT) -> int:
        """The exit status, once the process ends by itself; every line is read by then."""
        status = self.process.wait(timeout)
        self._reader.join(timeout)
        self._output_reader.join(timeout)
        while not self._ended:
            line = self._new.get(timeout=timeout)
            if line is None:
                self._ended = True
            else:
                self.lines.append(line)
        return status

    def stop(self, timeout: float = 3 * TIMEOUT) -> int:
        """SIGTERM, then the exit status (SIGKILL if it takes longer than ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
            raise

"""Peers in processes of their own: the Node.js server on the ``ws`` package and the C
echo on libwebsockets (the one benchmarks/ compiles), each started for real and stopped.

Both need something outside Python: ``.ci/run`` installs it (``npm install`` in
tests/peers/node, ``apt-get install libwebsockets-dev``). Where it is missing the tests
skip, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.conftest import TIMEOUT

NODE_DIR = Path(__file__).parent / "node"


def unavailable(why: str) -> None:
    """Skip, or fail in CI: what CI installs must be there."""
    if os.environ.get("CI"):
        pytest.fail(f"{why} (.ci/run installs it)")
    pytest.skip(why)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()


@asynccontextmanager
async def node_ws_server() -> AsyncIterator[str]:
    """Start tests/peers/node/server.mjs (Node.js, ``ws``); yields its URL."""
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "ws").is_dir():
        unavailable("node or its ws package is missing: npm install in tests/peers/node")
    process = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "server.mjs"), stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), TIMEOUT)
        word, _, port = line.decode().partition(" ")
        assert word == "listening", line
        yield f"ws://127.0.0.1:{int(port)}/node"
    finally:
        await _stop(process)
    assert process.returncode == 0, f"node exited with {process.returncode}"


def _build_lws_echo() -> Path | None:
    from benchmarks.servers import build_c_echo  # the benchmarks' own C echo

    return build_c_echo()


@asynccontextmanager
async def libwebsockets_echo() -> AsyncIterator[str]:
    """Compile and start the C echo on libwebsockets; yields its URL."""
    binary = await asyncio.to_thread(_build_lws_echo)
    if binary is None:
        unavailable("cannot compile the libwebsockets echo (cc, pkg-config and "
                    "libwebsockets-dev are needed)")
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(str(binary), str(port))
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:  # listening once a connection succeeds
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.02)
                    continue
                writer.close()
                break
        yield f"ws://127.0.0.1:{port}/"
    finally:
        await _stop(process)
        shutil.rmtree(binary.parent, ignore_errors=True)

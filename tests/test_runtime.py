"""The loops nbstream owns: uvloop's when installed, asyncio's otherwise."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

import nbstream
from nbstream import runtime
from tests.conftest import TIMEOUT


def test_an_owned_loop_is_uvloops_when_installed_else_asyncios(
        monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    loop = runtime.new_loop()
    assert isinstance(loop, uvloop.Loop)
    loop.close()
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    loop = runtime.new_loop()
    assert isinstance(loop, asyncio.BaseEventLoop)
    loop.close()


def test_a_scripts_server_and_load_test_run_on_the_owned_loop() -> None:
    fresh = runtime.new_loop()
    fresh.close()
    server = nbstream.serve("echo")
    try:
        assert type(runtime.background_loop()) is type(fresh)
        result = nbstream.load_test(server, connections=2, messages=5, progress=False)
        assert result.summary()["value"]["completed"] == 10
    finally:
        server.stop()


def test_a_blocking_call_inside_a_loop_that_cannot_nest_says_what_to_do() -> None:
    pytest.importorskip("uvloop")
    loop = runtime.background_loop()

    async def blocking_inside() -> Any:
        return runtime.run_sync(asyncio.sleep(0), loop)

    future = asyncio.run_coroutine_threadsafe(blocking_inside(), loop)
    with pytest.raises(RuntimeError, match="await its async twin"):
        future.result(TIMEOUT)

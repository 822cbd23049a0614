"""Replies start eagerly as the session's worker: the same task, the same outcomes.

nbstream.server.eager runs a reply from the receive loop, as the session's worker
task, until it first waits; the worker finishes it. These tests pin what a handler
sees: the worker as its current task before and after it first waits, its own
``asyncio.timeout`` working, order kept, a handler that raises before waiting.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import nbstream
from nbstream.server import eager
from tests.conftest import TIMEOUT, ServerFactory

pytestmark = pytest.mark.skipif(not eager.AVAILABLE, reason="no asyncio task hooks")


async def _tasks(message: nbstream.Message, session: Any) -> AsyncIterator[dict[str, Any]]:
    """Reports which task runs it before and after its first wait; times out a wait."""
    before = asyncio.current_task()
    text = message.data["text"]
    if text == "raise":
        raise RuntimeError("before any wait")
    if text == "timeout":
        try:
            async with asyncio.timeout(0.1):
                await asyncio.sleep(TIMEOUT)
        except TimeoutError:
            yield {"type": "content", "data": {"text": "timed out"}}
    else:
        await asyncio.sleep(0.01)
    after = asyncio.current_task()
    yield {"type": "content",
           "data": {"text": text, "before": before.get_name() if before else None,
                    "same": before is after}}


async def test_handler_runs_as_the_session_worker_and_its_timeouts_are_its_own(
    start_server: ServerFactory,
) -> None:
    server = await start_server(_tasks)
    client = await nbstream.aconnect(server.url)
    replies = await client.achat("hello", timeout=TIMEOUT)
    data = replies[0].data
    assert data["before"] == f"chats-{client.session_id}" and data["same"] is True
    # The handler's own timeout cancels the handler, not the connection's receive loop.
    replies = await client.achat("timeout", timeout=TIMEOUT)
    assert [m.text for m in replies[:-1]] == ["timed out", "timeout"]
    assert (await client.achat("again", timeout=TIMEOUT))[0].text == "again"
    assert client.reconnects == 0
    await client.aclose()


async def test_chats_sent_back_to_back_are_answered_in_order(start_server: ServerFactory) -> None:
    server = await start_server(_tasks)
    client = await nbstream.aconnect(server.url)
    count = 10  # within max_pending_chats: none is refused
    for i in range(count):
        await client.asend("chat", {"text": f"m{i}"})
    replies = [await client.arecv(TIMEOUT) for _ in range(2 * count)]
    assert [(m.type, m.text) for m in replies] == [
        pair for i in range(count) for pair in (("content", f"m{i}"), ("end", None))]
    await client.aclose()


async def test_handler_raising_before_it_waits_is_an_internal_error(
    start_server: ServerFactory,
) -> None:
    server = await start_server(_tasks)
    client = await nbstream.aconnect(server.url, reconnect=False)
    with pytest.raises(nbstream.StreamError) as caught:
        await client.achat("raise", timeout=TIMEOUT)
    assert caught.value.code == nbstream.ErrorCode.INTERNAL_ERROR
    await client.aclose()


async def test_resume_passes_results_and_cancellation_through() -> None:
    """The two helpers without sockets: finish now, finish later, cancelled while waiting."""
    worker = asyncio.create_task(asyncio.sleep(TIMEOUT))
    await asyncio.sleep(0)
    log: list[str] = []

    async def quick() -> None:
        log.append(f"quick as {asyncio.current_task() is worker}")

    assert eager.start_as(worker, quick()) is None
    gate = asyncio.get_running_loop().create_future()

    async def slow() -> None:
        log.append(f"slow as {asyncio.current_task() is worker}")
        try:
            log.append(await gate)
        except asyncio.CancelledError:
            log.append("slow cancelled")
            raise

    for outcome in ("result", "cancel"):
        coro = slow()
        waiting_on = eager.start_as(worker, coro)
        assert waiting_on is gate
        finisher = asyncio.create_task(eager.resume(coro, waiting_on))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        if outcome == "result":
            gate.set_result("slow got result")
            await asyncio.wait_for(finisher, TIMEOUT)
            gate = asyncio.get_running_loop().create_future()
        else:
            finisher.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(finisher, TIMEOUT)
    assert log == ["quick as True", "slow as True", "slow got result", "slow as True",
                   "slow cancelled"]
    worker.cancel()

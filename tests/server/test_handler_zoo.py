"""Handlers as people write them: every one ends each chat with ``end`` or a structured
error, leaves no stray task or warning behind, and keeps the connection usable unless
the documented policy (a raising handler closes with 1011) closes it.

Each handler is served for real and chatted twice on one connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import nbstream
from nbstream.protocol import Message, Session
from tests.conftest import TIMEOUT, ServerFactory, eventually

Zoo = Callable[[Message, Session], AsyncIterator[Any]]


async def sleep_before(message: Message, session: Session) -> AsyncIterator[str]:
    await asyncio.sleep(0)
    yield "a"


async def sleep_between(message: Message, session: Session) -> AsyncIterator[str]:
    yield "a"
    await asyncio.sleep(0)
    yield "b"


async def call_soon_future(message: Message, session: Session) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    loop.call_soon(future.set_result, "a")
    yield await future


async def to_thread(message: Message, session: Session) -> AsyncIterator[str]:
    yield await asyncio.to_thread(str.upper, "a")


async def gathered(message: Message, session: Session) -> AsyncIterator[str]:
    async def part(text: str) -> str:
        await asyncio.sleep(0.001)
        return text

    for text in await asyncio.gather(part("a"), part("b")):
        yield text


async def waited_for(message: Message, session: Session) -> AsyncIterator[str]:
    yield await asyncio.wait_for(asyncio.sleep(0.001, "a"), TIMEOUT)


async def own_timeout(message: Message, session: Session) -> AsyncIterator[str]:
    try:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(TIMEOUT)
    except TimeoutError:
        yield "timed out"


async def raise_before(message: Message, session: Session) -> AsyncIterator[str]:
    if message.text:
        raise RuntimeError("before the first yield")
    yield "unreachable"


async def raise_after(message: Message, session: Session) -> AsyncIterator[str]:
    yield "a"
    raise RuntimeError("after the first yield")


async def yields_nothing(message: Message, session: Session) -> AsyncIterator[str]:
    if not message.text:
        yield "unreachable"


_var: contextvars.ContextVar[int] = contextvars.ContextVar("zoo", default=0)


async def context_var(message: Message, session: Session) -> AsyncIterator[str]:
    at_start = _var.get()
    _var.set(at_start + 1)
    await asyncio.sleep(0)
    yield f"{at_start} {_var.get()}"


async def many_yields(message: Message, session: Session) -> AsyncIterator[str]:
    for _ in range(100_000):
        yield "x"


ZOO: list[tuple[Zoo, list[str] | None]] = [
    (sleep_before, ["a"]),
    (sleep_between, ["a", "b"]),
    (call_soon_future, ["a"]),
    (to_thread, ["A"]),
    (gathered, ["a", "b"]),
    (waited_for, ["a"]),
    (own_timeout, ["timed out"]),
    (raise_before, None),
    (raise_after, None),
    (yields_nothing, []),
    (context_var, ["0 1"]),
]
"""Each handler and the texts of each chat's reply (None: it raises, by policy)."""

STRAY = ("never retrieved", "was destroyed", "already running", "Task exception")


def strays(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log lines that betray a leaked task or a broken generator."""
    gc.collect()
    return [r.getMessage() for r in caplog.records
            if any(s in r.getMessage() for s in STRAY) or r.name == "asyncio"]


@pytest.mark.parametrize(("handler", "texts"), ZOO, ids=[h.__name__ for h, _ in ZOO])
async def test_each_chat_ends_and_nothing_is_left_behind(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture,
    handler: Zoo, texts: list[str] | None,
) -> None:
    caplog.set_level(logging.WARNING)
    server = await start_server(handler)
    client = await nbstream.aconnect(server.url, reconnect=False)
    if texts is None:
        with pytest.raises(nbstream.StreamError) as failed:
            await client.achat("x", timeout=TIMEOUT)
        assert failed.value.code == "INTERNAL_ERROR"
        with pytest.raises(nbstream.StreamClosed) as closed:
            await client.achat("again", timeout=TIMEOUT)
        assert closed.value.code == 1011
    else:
        for _ in range(2):
            replies = await client.achat("x", timeout=TIMEOUT)
            assert [m.type for m in replies] == ["content"] * len(texts) + ["end"]
            assert [m.text for m in replies[:-1]] == texts
        await client.aclose()
    await eventually(lambda: len(server.connections) == 0 and len(server._registry) == 0)
    assert strays(caplog) == []


async def test_many_yields_without_an_await_all_arrive(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    server = await start_server(many_yields)
    client = await nbstream.aconnect(server.url, reconnect=False)
    for _ in range(2):
        replies = await client.achat("x", timeout=TIMEOUT * 6)
        assert len(replies) == 100_001 and replies[-1].type == "end"
    await client.aclose()
    assert strays(caplog) == []


async def test_a_reply_cut_by_the_clients_close_is_cancelled_and_leaves_nothing(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(message: Message, session: Session) -> AsyncIterator[str]:
        yield "first"
        started.set()
        try:
            await asyncio.sleep(TIMEOUT * 10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        yield "never"

    server = await start_server(slow)
    client = await nbstream.aconnect(server.url, reconnect=False)
    await client.asend("chat", {"text": "go"})
    await asyncio.wait_for(started.wait(), TIMEOUT)
    await client.aclose()
    await asyncio.wait_for(cancelled.wait(), TIMEOUT)
    await eventually(lambda: len(server.connections) == 0 and len(server._registry) == 0)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("reply-")]
    assert strays(caplog) == []


async def test_a_handler_waiting_while_the_client_closes_is_cancelled_at_once(
    start_server: ServerFactory,
) -> None:
    waiting = asyncio.Event()

    async def patient(message: Message, session: Session) -> AsyncIterator[str]:
        waiting.set()
        await asyncio.sleep(5)
        yield "late"

    server = await start_server(patient)
    client = await nbstream.aconnect(server.url, reconnect=False)
    await client.asend("chat", {"text": "go"})
    await asyncio.wait_for(waiting.wait(), TIMEOUT)
    loop = asyncio.get_running_loop()
    closed_at = loop.time()
    await client.aclose()
    await eventually(lambda: len(server._registry) == 0, timeout=2.0)
    assert loop.time() - closed_at < 2.0
    report = await server.astop(timeout=1.0)
    assert report.cut == [] and report.seconds < 2.0


async def test_each_reply_runs_in_its_own_context(start_server: ServerFactory) -> None:
    """A context variable set by one reply is kept across its waits and never leaks
    into the receive loop or the next reply."""
    server = await start_server(context_var)
    client = await nbstream.aconnect(server.url, reconnect=False)
    first = await client.achat("one", timeout=TIMEOUT)
    second = await client.achat("two", timeout=TIMEOUT)
    assert first[0].text == "0 1" and second[0].text == "0 1"
    await client.aclose()


def test_the_reply_task_is_eager_where_python_has_eager_tasks() -> None:
    from nbstream import tasks

    async def main() -> bool:
        ran = []

        async def step() -> None:
            ran.append(True)

        task = tasks.start(step())
        done_at_once = bool(ran)
        await task
        return done_at_once

    assert asyncio.run(main()) is tasks.EAGER

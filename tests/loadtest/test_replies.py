"""How the load generator matches replies to the request in flight, against a real
server that sends exactly the frames each request asks for ("$ID" is the request's id)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import pytest
from websockets.asyncio.server import ServerConnection, serve

import nbstream
from nbstream.protocol import Message, encode, encode_batch
from tests.conftest import TIMEOUT


async def _scripted(ws: ServerConnection) -> None:
    async for frame in ws:
        request = json.loads(frame)
        for reply in json.loads(request["data"]["text"]):
            if reply == "WAIT_FOR_PONG":
                pong = json.loads(await ws.recv())
                assert pong["type"] == "pong", pong
                continue
            await ws.send(reply.replace("$ID", request["id"]))


@pytest.fixture
async def scripted_url() -> AsyncIterator[str]:
    async with serve(_scripted, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


def frame(type_: str, data: object) -> str:
    return encode(Message(type_, data)).decode()


def script(*frames: str) -> Callable[[int, int], str]:
    """A payload function: every message asks the server for ``frames``."""
    return lambda connection, i: json.dumps(list(frames))


async def run(url: str, payload: Callable[[int, int], str], messages: int = 2,
              **options: object) -> nbstream.LoadResult:
    return await nbstream.aload_test(url, connections=1, messages=messages, payload=payload,
                                     progress=False, timeout=TIMEOUT, **options)  # type: ignore[arg-type]


async def test_a_stream_then_its_end_finishes_the_message(scripted_url: str) -> None:
    result = await run(scripted_url, script(frame("content", {"text": "a", "reply_to": "$ID"}),
                                            frame("end", {"reply_to": "$ID"})))
    m = result.messages
    assert m["error"].isna().all() and list(m["replies"]) == [2, 2]
    assert (m["ttft"] <= m["latency"]).all() and (m["bytes_in"] > 0).all()


async def test_replies_to_other_requests_are_not_counted(scripted_url: str) -> None:
    result = await run(scripted_url, script(frame("end", {"reply_to": "someone else"}),
                                            frame("end", {"reply_to": "$ID"})))
    assert list(result.messages["replies"]) == [1, 1]


async def test_an_error_reply_is_a_row_and_the_connection_goes_on(scripted_url: str) -> None:
    error = {"code": "RATE_LIMITED", "message": "slow down", "recoverable": True,
             "details": {"reply_to": "$ID"}}
    result = await run(scripted_url, script(frame("error", error)), messages=3)
    m = result.messages
    assert list(m["error"]) == ["RATE_LIMITED"] * 3 and m["latency"].notna().all()
    assert result.connections["error"].isna().all()


async def test_an_unrecoverable_error_ends_the_connection(scripted_url: str) -> None:
    error = {"code": "TOO_MANY_CONNECTIONS", "message": "full", "recoverable": False}
    result = await run(scripted_url, script(frame("error", error)), messages=3)
    assert list(result.messages["error"]) == ["TOO_MANY_CONNECTIONS", "NOT_SENT", "NOT_SENT"]
    assert list(result.connections["error"]) == ["TOO_MANY_CONNECTIONS"]


async def test_batches_are_unpacked(scripted_url: str) -> None:
    batch = encode_batch([encode(Message("content", {"text": "a", "reply_to": "$ID"})),
                          encode(Message("end", {"reply_to": "$ID"}))]).decode()
    result = await run(scripted_url, script(batch))
    m = result.messages
    assert m["error"].isna().all() and list(m["replies"]) == [2, 2]


async def test_in_band_pings_in_the_middle_of_a_reply_are_answered(scripted_url: str) -> None:
    result = await run(scripted_url, script(frame("ping", {}), "WAIT_FOR_PONG",
                                            frame("end", {"reply_to": "$ID"})))
    m = result.messages
    assert m["error"].isna().all() and list(m["replies"]) == [1, 1]  # the ping is no reply


async def test_a_frame_that_breaks_the_protocol_fails_the_message(scripted_url: str) -> None:
    result = await run(scripted_url, script("plain text, not an envelope"), messages=1)
    assert list(result.messages["error"]) == ["PROTOCOL_ERROR"]


async def test_raw_protocol_takes_the_first_frame_as_the_answer(scripted_url: str) -> None:
    async def flow(user: nbstream.loadtest.User) -> None:
        replies = await user.request(json.dumps({"id": "x", "data": {"text": json.dumps(
            ["first", "second"])}}))
        user.check("first frame", [r.data for r in replies] == ["first"])
        later = await user.client.arecv(timeout=TIMEOUT)  # the second waits for recv
        user.check("second frame", later.data == "second")

    result = await nbstream.aload_test(scripted_url, scenario=flow, protocol="raw",
                                       connections=1, iterations=2, progress=False)
    assert result.messages["error"].isna().all() and list(result.messages["replies"]) == [1, 1]
    assert result.checks["fails"].sum() == 0 and result.checks["passes"].sum() == 4

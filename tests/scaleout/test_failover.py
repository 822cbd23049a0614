"""A node dies mid-stream: its client resumes on another node from the Redis history."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

import nbstream
from nbstream.events import FlowEvent
from nbstream.protocol import SUBPROTOCOL, Backoff, Position
from tests.conftest import TIMEOUT, ServerFactory, recv_json
from tests.scaleout.conftest import NodeFactory, eventually
from tests.scaleout.processes import RedisServer

QUESTION = " ".join(f"word{i}" for i in range(80))
"""The agent repeats it back one token every 10 ms: a reply of about a second."""

PATIENT = Backoff(base=0.05, cap=0.2, attempts=200)
"""Reconnect attempts for at least as long as a node takes to start."""


def offset(message_id: str) -> int:
    """The offset in the session's stream that a message id carries."""
    position = Position.parse(message_id)
    assert position is not None, message_id
    return position.offset


async def test_killed_node_client_resumes_on_a_new_node_without_loss(
    start_node: NodeFactory,
) -> None:
    doomed = await start_node(handler="agent")
    client = await nbstream.aconnect(doomed.url, user="dan", reconnect=PATIENT,
                                     timeout=TIMEOUT)
    seen: list[Position] = []
    tokens = asyncio.Event()

    def on_event(event: FlowEvent) -> None:
        position = Position.parse(event.message.id) if event.message is not None else None
        if event.kind == "in" and position is not None:  # a stream message, not control
            seen.append(position)
            if len(seen) == 20:
                tokens.set()

    client.events.subscribe(on_event)
    chat = asyncio.create_task(client.achat(QUESTION, timeout=6 * TIMEOUT))
    await asyncio.wait_for(tokens.wait(), TIMEOUT)
    await asyncio.to_thread(doomed.kill)  # mid-stream, no goodbye
    # Another node takes the same address, as a restarted pod behind a Service would.
    await start_node(port=doomed.port, handler="agent")
    replies = await chat

    assert client.reconnects == 1 and client.recovered is True
    assert len({p.epoch for p in seen}) == 1
    assert [p.offset for p in seen] == list(range(len(seen)))  # no gap, no duplicate
    text = "".join(m.text or "" for m in replies if m.type == "content")
    whole = f"You said: {QUESTION!r}."
    cut, _, again = text.partition(whole)  # the cut reply, then the chat asked again
    assert whole.startswith(cut.rstrip()) and again.startswith(" I am nbstream")
    assert replies[-1].type == "end"
    await client.aclose()


async def test_messages_missed_before_the_crash_are_replayed_from_redis(
    start_node: NodeFactory, redis_client: Any,
) -> None:
    doomed = await start_node(handler="agent")
    async with connect(doomed.url + "?user=erin", subprotocols=[Subprotocol(SUBPROTOCOL)]) as ws:
        welcome = await recv_json(ws)
        session = welcome["data"]["session_id"]
        await ws.send(json.dumps({"type": "chat", "data": {"text": "word " * 30}}))
        last = (await recv_json(ws))["id"]  # then the client vanishes, no close frame
        ws.transport.abort()

    async def reply_stored() -> bool:
        newest = await redis_client.xrevrange(f"nbstream:s:{session}", count=1)
        return bool(newest) and b'"type":"end"' in newest[0][1][b"f"]

    await eventually(reply_stored)  # the node finished the reply into the history
    await asyncio.to_thread(doomed.kill)
    heir = await start_node(handler="agent")
    address = f"{heir.url}?user=erin&session_id={session}&last_id={last}"
    async with connect(address, subprotocols=[Subprotocol(SUBPROTOCOL)]) as ws:
        welcome = await recv_json(ws)
        assert welcome["data"]["recovered"] is True, welcome
        replayed = [await recv_json(ws) for _ in range(welcome["data"]["replayed"])]
    offsets = [offset(m["id"]) for m in replayed]
    assert offsets == list(range(offset(last) + 1, offsets[-1] + 1))
    assert replayed[-1]["type"] == "end" and len(replayed) > 25


async def test_graceful_stop_leaves_the_history_to_the_next_node(
    redis_server: RedisServer, start_server: ServerFactory,
) -> None:
    first = await start_server("echo", backplane=redis_server.url)
    client = await nbstream.aconnect(first.url, reconnect=PATIENT, timeout=TIMEOUT)
    await client.achat("one")
    await first.astop()  # a rolling update: server_shutdown, then 1001
    await start_server("echo", backplane=redis_server.url, port=first.port)
    replies = await client.achat("two")
    assert [m.text for m in replies if m.type == "content"] == ["two"]
    assert client.recovered is True
    await client.aclose()

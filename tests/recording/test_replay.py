"""replay(): the client's frames sent again with their timing; diff() of what came back."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncGenerator
from collections.abc import Set as AbstractSet

import pytest

import nbstream
from nbstream import Message, Recording, Session
from nbstream.events import CLOSE
from nbstream.recording.frames import Frame
from nbstream.recording.replayer import Timing
from nbstream.redact import REDACTED
from tests.conftest import ServerFactory, eventually
from tests.recording.helpers import T0, recording, text

GAPS = [0.10, 0.05, 0.20, 0.03, 0.15, 0.08, 0.25, 0.04]
"""Seconds between the recorded chats (the first after connecting)."""


async def shouting_echo(message: Message, session: Session) -> AsyncGenerator[Message, None]:
    """Like the echo handler, but changed: the injected difference."""
    yield Message("content", {"text": message.data["text"].upper()})


async def record_chats(server: nbstream.Server, gaps: list[float] = GAPS) -> Recording:
    with nbstream.record(server) as rec:
        client = await nbstream.aconnect(server.url)
        for number, gap in enumerate(gaps):
            await asyncio.sleep(gap)
            await client.achat(f"message {number}")
        await client.aclose()
        await eventually(lambda: any(f.opcode == CLOSE for f in rec.frames))
    return rec


def send_times(rec: Recording, origin: float) -> list[float]:
    return [f.at - origin for f in rec.frames if f.direction == "c2s" and f.is_data]


def lateness(original: Recording, replayed: Recording, speed: float) -> list[float]:
    """Each replayed send's error against the original spacing, in seconds."""
    [session] = original.info.values()
    origin = min(session.opened or original.start, original.frames[0].at)
    wanted = [t / speed for t in send_times(original, origin)]
    got = send_times(replayed, replayed.start)
    assert len(got) == len(wanted)
    return [abs(g - w) for g, w in zip(got, wanted, strict=True)]


@pytest.mark.parametrize("speed", [1.0, 4.0])
async def test_original_timing_holds_within_10_ms(start_server: ServerFactory,
                                                  speed: float) -> None:
    original = await record_chats(await start_server("echo"))
    replayed = await original.areplay(await start_server("echo"), speed=speed)
    errors = lateness(original, replayed, speed)
    # 10 ms per message; on a loaded machine single sends may slip, so the median
    # holds the line and any one send gets 10x.
    assert statistics.median(errors) <= 0.010, errors
    assert max(errors) <= 0.100, errors
    assert replayed.meta == {"replay_of": original.source, "timing": "original",
                             "speed": speed}
    assert original.diff(replayed, tolerance=0.5).empty


async def test_a_replay_against_a_changed_server_shows_the_change(
        start_server: ServerFactory) -> None:
    original = await record_chats(await start_server("echo"), GAPS[:3])
    replayed = await original.areplay(await start_server(shouting_echo), timing="fast")
    d = original.diff(replayed)
    assert list(d["change"]) == ["changed"] * 3
    assert set(d["direction"]) == {"s2c"} and set(d["type"]) == {"content"}
    assert all("MESSAGE" in p for p in d["other_payload"])
    assert all("MESSAGE" not in p for p in d["payload"])


async def test_fast_sends_back_to_back(start_server: ServerFactory) -> None:
    original = await record_chats(await start_server("echo"))
    replayed = await original.areplay(await start_server("echo"), timing="fast")
    sent = send_times(replayed, replayed.start)
    assert sent[-1] - sent[0] < sum(GAPS[1:]) / 2
    assert original.diff(replayed, tolerance=1.0).empty


async def test_wait_sends_each_frame_after_the_replies_before_it(
        start_server: ServerFactory) -> None:
    original = await record_chats(await start_server("agent"), [0.05, 0.05])
    replayed = await original.areplay(await start_server("agent"), timing="wait")
    kinds = [f.type for f in replayed.frames if f.is_data]
    second_chat = kinds.index("chat", kinds.index("chat") + 1)
    assert kinds[second_chat - 1] == "end"  # not sent before the first reply ended
    assert original.diff(replayed, tolerance=1.0).empty


async def test_sessions_replay_side_by_side_and_can_be_chosen(
        start_server: ServerFactory) -> None:
    server = await start_server("echo")
    with nbstream.record(server) as rec:
        clients = await asyncio.gather(*(nbstream.aconnect(server.url) for _ in range(3)))
        await asyncio.gather(*(c.achat(f"from {i}") for i, c in enumerate(clients)))
        for client in clients:
            await client.aclose()
        await eventually(lambda: sum(f.opcode == CLOSE for f in rec.frames) == 3)
    target = await start_server("echo")
    everything = await rec.areplay(target, timing="fast")
    assert set(everything.info) == set(rec.info)
    chosen = clients[1].session_id or ""
    one = await rec.areplay(target, timing="fast", sessions=chosen)
    assert set(one.info) == {chosen}
    with pytest.raises(KeyError, match="no session 'nope'"):
        await rec.areplay(target, sessions=["nope"])


async def test_an_unreachable_target_is_a_problem_not_a_crash() -> None:
    rec = recording(text(0, "c2s", "hello"))
    replayed = await rec.areplay("ws://127.0.0.1:9/ws", timeout=1.0, open_timeout=1.0)
    assert len(replayed) == 0
    assert len(replayed.problems) == 1 and "could not connect" in replayed.problems[0]


async def raw_echo(message: Message, session: Session) -> AsyncGenerator[object, None]:
    yield message.data


async def test_redacted_secrets_are_not_sent_again(start_server: ServerFactory) -> None:
    server = await start_server(raw_echo, protocol="raw")
    rec = recording(text(0, "c2s", f'{{"type":"auth","data":{{"token":"{REDACTED}"}}}}'),
                    text(0.01, "c2s", "hello"), text(0.02, "s2c", "hello"))
    replayed = await rec.areplay(server, timing="fast")
    assert [f.payload for f in replayed.frames if f.is_data] == ["hello", "hello"]
    assert "1 frame(s) with redacted secrets" in replayed.problems[0]


async def test_a_server_that_closes_first_is_recorded_with_its_code(
        start_server: ServerFactory) -> None:
    server = await start_server("echo", max_message_bytes=1024)
    rec = recording(text(0, "c2s", '{"type":"chat","data":{"text":"' + "x" * 2000 + '"}}'))
    replayed = await rec.areplay(server, timing="fast", timeout=2.0)
    close = replayed.frames[-1]
    assert (close.opcode, close.direction, close.close_code) == (CLOSE, "s2c", 1009)


async def test_bad_arguments_are_refused() -> None:
    rec = Recording([Frame(T0, "s1", "c2s", 1, None, 1, "x")])
    with pytest.raises(ValueError, match="timing='slow'"):
        await rec.areplay("ws://127.0.0.1:9/ws", timing="slow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        await rec.areplay("ws://127.0.0.1:9/ws", speed=0)
    with pytest.raises(TypeError, match="protocol"):
        await rec.areplay("ws://127.0.0.1:9/ws", protocol="json")


BEATING = {"heartbeat_interval": 0.15, "heartbeat_timeout": 0.15}
"""A server that pings every 0.15 s and closes a peer silent 0.15 s after a ping."""


@pytest.mark.parametrize("timing", ["original", "fast", "wait"])
async def test_a_replay_answers_the_servers_pings_and_replays_no_old_pongs(
        start_server: ServerFactory, timing: Timing) -> None:
    """Heartbeats are the connection's, not the conversation's: the recorded pings
    and pongs are neither sent again nor waited for, and the replaying client answers
    the new server's pings, however long the replay is silent."""
    original = await record_chats(await start_server("echo", **BEATING), [0.05, 1.0])
    assert any(f.type == "pong" for f in original.frames if f.direction == "c2s")
    started = time.perf_counter()
    replayed = await original.areplay(await start_server("echo", **BEATING),
                                      timing=timing, speed=0.5, timeout=3.0)
    took = time.perf_counter() - started
    assert replayed.problems == []
    close = replayed.frames[-1]
    assert (close.opcode, close.direction, close.close_code) == (CLOSE, "c2s", 1000)
    pongs = [f for f in replayed.frames if f.direction == "c2s" and f.type == "pong"]
    pings = {f.payload for f in replayed.frames if f.direction == "s2c" and f.type == "ping"}
    assert all(_answered(p.payload, pings) for p in pongs)  # no recorded pong went out
    if timing == "original":  # 2 s of replay at half speed, mostly silent
        assert len(pongs) >= 5
    else:  # over in a moment: nobody waited for the recorded pings
        assert took < 2.0
    assert original.diff(replayed, tolerance=5.0).empty  # heartbeats are not compared


def _answered(pong: object, pings: AbstractSet[object]) -> bool:
    """Whether ``pong`` answers one of ``pings`` (same id, as the nbstream client does)."""
    import json
    pong_id = json.loads(str(pong))["data"].get("ping_id")
    return any(json.loads(str(p))["id"] == pong_id for p in pings)

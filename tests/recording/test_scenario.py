"""to_scenario(), user by user: a stand-in with the members of nbstream.loadtest.User
logs what the scenario asks of it, on a real client and server (test_scenario_load.py
runs it under load_test itself)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import nbstream
from nbstream import Message, Recording, wire
from tests.conftest import ServerFactory
from tests.recording.helpers import echo_twice, recording, text


class StandInUser:
    """The members of nbstream.loadtest.User a scenario uses, logged."""

    def __init__(self, client: nbstream.Client, index: int) -> None:
        self.client, self.index, self.iteration, self.data = client, index, 0, None
        self.log: list[tuple[Any, ...]] = []

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        self.log.append(("step", name))
        yield

    async def request(self, value: Any, until: Any = None, name: str = "request",
                      timeout: float | None = 5.0) -> list[Message]:
        replies = await self.client.arequest(value, until=until, timeout=timeout)
        self.log.append(("request", name, [m.type for m in replies]))
        return replies

    def check(self, name: str, ok: bool) -> None:
        self.log.append(("check", name, ok))

    async def sleep(self, seconds: float) -> None:
        self.log.append(("sleep", round(seconds, 3)))
        await asyncio.sleep(seconds)


async def test_a_recorded_chat_session_becomes_a_scenario(start_server: ServerFactory) -> None:
    server = await start_server("agent")
    with nbstream.record(server) as rec:
        client = await nbstream.aconnect(server.url)
        await client.achat("what is 6*7?")
        await asyncio.sleep(0.2)
        await client.achat("hello")
        await client.aclose()
    scenario = rec.to_scenario(speed=4.0)
    users = [StandInUser(await nbstream.aconnect(server.url), i) for i in range(2)]
    await asyncio.gather(*(scenario(user) for user in users))
    for user in users:
        await user.client.aclose()
        assert user.log[0] == ("step", "session")
        requests = [entry for entry in user.log if entry[0] == "request"]
        assert [(name, types[-1]) for _, name, types in requests] == [("chat", "end")] * 2
        assert "tool_use" in requests[0][2] and "content" in requests[1][2]
        sleeps = [entry[1] for entry in user.log if entry[0] == "sleep"]
        assert len(sleeps) == 2 and 0.04 <= sleeps[1] <= 0.1  # the 0.2 s pause at 4x


async def test_other_protocols_send_frames_as_recorded_and_count_replies(
        start_server: ServerFactory) -> None:
    server = await start_server(echo_twice, protocol="raw")
    rec = recording(text(0, "c2s", "a", session="one"), text(0.01, "s2c", "a", session="one"),
                    text(0.02, "s2c", "a", session="one"), text(0.5, "c2s", "fire", session="one"),
                    text(0, "c2s", "b", session="two"), text(0.01, "s2c", "b", session="two"))
    scenario = rec.to_scenario(think=False)
    users = [StandInUser(await nbstream.aconnect(server.url, protocol="raw"), i)
             for i in range(3)]
    await asyncio.gather(*(scenario(user) for user in users))
    for user in users:
        await user.client.aclose()
    assert [u.log for u in users] == [
        [("step", "session one"), ("request", "message", ["text", "text"])],
        [("step", "session two"), ("request", "message", ["text"])],
        [("step", "session one"), ("request", "message", ["text", "text"])],
    ]


def test_heartbeats_and_auth_are_left_to_the_client() -> None:
    rec = recording(text(0, "c2s", '{"type":"auth","data":{"token":"t"}}'),
                    text(0.1, "c2s", '{"type":"pong","data":{"ping_id":"p"}}'))
    user = StandInUser(None, 0)  # type: ignore[arg-type]
    user.client = type("C", (), {"protocol": wire.create("nbstream")})()

    async def play() -> None:
        await rec.to_scenario()(user)

    asyncio.run(play())
    assert user.log == [("step", "session")]


def test_a_recording_with_nothing_sent_is_no_scenario() -> None:
    with pytest.raises(ValueError, match="no frames sent by a client"):
        recording(text(0, "s2c", "only the server spoke")).to_scenario()
    with pytest.raises(ValueError, match="speed"):
        Recording().to_scenario(speed=-1)

"""to_scenario() end to end: load_test(scenario=...) plays a recording with many users."""

from __future__ import annotations

import asyncio

import nbstream
from tests.conftest import ServerFactory
from tests.recording.helpers import echo_twice, recording, text


async def test_one_recorded_chat_session_becomes_a_load_test(
        start_server: ServerFactory) -> None:
    server = await start_server("agent")
    with nbstream.record(server) as rec:
        client = await nbstream.aconnect(server.url)
        await client.achat("what is 6*7?")
        await asyncio.sleep(0.2)
        await client.achat("hello")
        await client.aclose()
    result = await nbstream.aload_test(await start_server("agent"),
                                       scenario=rec.to_scenario(speed=4), connections=20,
                                       iterations=2)
    steps = result.steps
    assert steps.loc["chat", "count"] == 20 * 2 * 2 and steps.loc["session", "count"] == 40
    assert steps["errors"].sum() == 0
    assert (result.iterations["think_time"] >= 0.04).all()  # the 0.2 s pause at 4x


async def test_a_capture_of_another_protocol_replays_frames_as_they_were(
        start_server: ServerFactory) -> None:
    server = await start_server(echo_twice, protocol="raw")
    rec = recording(text(0, "c2s", '{"op":"sub"}', kind="sub"),
                    text(0.01, "s2c", '{"op":"sub"}'), text(0.02, "s2c", '{"op":"sub"}'),
                    text(0.05, "c2s", "bye"))
    result = await nbstream.aload_test(server, scenario=rec.to_scenario(think=False),
                                       protocol="raw", connections=5, iterations=3)
    assert result.steps.loc["sub", "count"] == 15 and result.steps["errors"].sum() == 0

"""WebSocketInput and WebSocketOutput under a real BidiAgent, served on real sockets."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator

from strands import tool
from strands.bidi import BidiAgent
from websockets.asyncio.client import connect

from nbstream.events import BINARY
from nbstream.protocol import ErrorCode
from nbstream.strands import AgentClient, ScriptedBidiModel, aconnect
from tests.bidi.conftest import AgentServer, agent_on, read_until, types
from tests.conftest import TIMEOUT, eventually


async def test_a_text_turn_streams_transcript_text_and_audio(agent: AgentClient) -> None:
    turn = await agent.aturn("hello")
    assert types(turn.events)[:2] == ["bidi_connection_start", "bidi_response_start"]
    assert turn.transcript == turn.text == "Hello! Ask me a sum."
    assert len(turn.audio) == 5 * 1_280  # 40 ms of 16 kHz PCM per word
    assert turn.first_transcript is not None and turn.first_audio is not None
    assert turn.duration is not None and 0 < turn.first_transcript <= turn.duration
    ids = [event.id for event in turn.events]
    assert all(":" in i for i in ids) and len(set(ids)) == len(ids)  # places in the stream


async def test_a_tool_turn_over_the_wire(agent: AgentClient) -> None:
    first = await agent.aturn("what is 6*7")
    assert types(first.events)[:4] == ["bidi_connection_start", "bidi_response_start",
                                       "bidi_tool_use_blocks", "bidi_response_stop"]
    assert types(first.events)[4:7] == ["tool_result", "tool_result_message",
                                        "bidi_response_start"]
    assert first.text == "6*7 is 42."
    assert first.tools == [{"name": "calculator", "input": {"expression": "6*7"},
                            "status": "success", "result": "42"}]
    assert first.tool_round_trip is not None and first.tool_round_trip >= 0
    for event in first.events:
        json.dumps(event.data)  # every envelope is plain JSON


async def test_hostile_inputs_get_errors_and_the_conversation_goes_on(
        agent: AgentClient) -> None:
    client = agent.client
    await read_until(agent, "bidi_connection_start")
    too_big = base64.b64encode(bytes(300_000)).decode()
    hostile = [
        await client.asend("bidi_video_input", {"frames": []}),
        await client.asend("bidi_audio_input", {"audio": "%%% not base64 %%%"}),
        await client.asend("bidi_audio_input", {"audio": too_big}),
        await client.asend("bidi_text_input", {"words": "hi"}),
        await client.asend("bidi_text_input", ["not", "an", "object"]),
        await client.asend("bidi_config", {"binary_audio": "yes"}),
        await client.asend("bidi_audio_input", {"format": "pcm"}),  # announces a frame...
    ]
    await client.asend("bidi_text_input", {"text": "what is 1+1"})  # ...that never came
    await client.asend(b"\x00\x01\x02")  # a bare frame: audio, but not whole samples
    await client.asend(bytes(300_000))  # a bare frame over max_audio_bytes
    for sent in hostile:
        event = (await read_until(agent, "error"))[-1]
        assert event.error is not None
        assert event.error.code == ErrorCode.INVALID_MESSAGE and event.error.recoverable
        assert event.error.details["id"] == sent.id, event.error
    odd = (await read_until(agent, "error"))[-1].error
    assert odd is not None and "whole 16-bit samples" in odd.message
    big = (await read_until(agent, "error"))[-1].error
    assert big is not None and big.details["size"] == 300_000 and big.recoverable
    answer = await agent.aresponse()
    assert answer.text == "1+1 is 2."  # the input read after the missing frame
    assert (await agent.aturn("hello")).text == "Hello! Ask me a sum."


async def test_frames_that_are_not_envelopes_are_refused_by_the_server(
        agent_server: AgentServer) -> None:
    server = await agent_server()
    async with connect(server.url, subprotocols=["nbstream.v1"]) as ws:  # type: ignore[list-item]
        for expected in ("welcome", "bidi_connection_start"):
            assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == expected
        await ws.send("{not json")
        error = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert error["type"] == "error" and error["data"]["code"] == "INVALID_MESSAGE"
        await ws.send(json.dumps({"type": "bidi_text_input", "data": {"text": "hello"}}))
        kinds = []
        while "bidi_response_stop" not in kinds:
            kinds.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"])
        assert "bidi_text_delta" in kinds


async def test_audio_over_the_wire_is_answered_by_its_length(agent: AgentClient) -> None:
    sent = await agent.asend_audio(bytes(32_000), sample_rate=16_000)
    assert len(sent) == 10  # 100 ms chunks
    answer = await agent.aresponse()
    assert answer.heard == "(1.00 s of audio)"
    assert answer.text == "I heard 1.0 seconds of audio."


async def test_binary_audio_both_ways(agent_server: AgentServer) -> None:
    server = await agent_server()
    agent = await aconnect(server.url, timeout=TIMEOUT, binary_audio=True)
    await agent.asend_audio(bytes(16_000), chunk_ms=250)
    answer = await agent.aresponse()
    assert answer.text == "I heard 0.5 seconds of audio."
    deltas = [e for e in answer.events if e.type == "bidi_audio_delta"]
    assert deltas and all(e.payload is not None and "audio" not in e.data for e in deltas)
    assert all(e.get("audio_bytes") == len(e.audio) == 1_280 for e in deltas)
    frames = [e for e in agent.events.to_frame().itertuples() if e.opcode == BINARY]
    assert len(frames) >= len(deltas) + 2  # binary frames both ways
    await agent.aconfigure(binary_audio=False)
    again = await agent.aturn("hello")
    assert all(e.payload is None and e.audio for e in again.events
               if e.type == "bidi_audio_delta")
    await agent.aclose()


async def test_the_input_takes_the_models_audio_format(agent_server: AgentServer) -> None:
    server = await agent_server(lambda: BidiAgent(model=ScriptedBidiModel(
        pace=0, audio_gap=0.05, input_sample_rate=24_000)))
    agent = await aconnect(server.url, timeout=TIMEOUT)
    refused = await agent.asend_audio(bytes(4_800), sample_rate=16_000)
    error = (await read_until(agent, "error"))[-1].error
    assert error is not None and "24000" in error.message
    assert error.details["id"] == refused[0].id
    await agent.asend_audio(bytes(4_800), sample_rate=24_000)
    answer = await agent.aresponse()
    assert answer.text == "You said: (0.10 s of audio)"
    await agent.aclose()


async def test_a_client_leaving_ends_the_session_and_stops_its_agent(
        agent_server: AgentServer) -> None:
    agents: list[BidiAgent] = []

    def factory() -> BidiAgent:
        agents.append(agent_on())
        return agents[-1]

    server = await agent_server(factory)
    first = await aconnect(server.url, timeout=TIMEOUT)
    second = await aconnect(server.url, timeout=TIMEOUT)
    assert (await first.aturn("hello")).text == (await second.aturn("hello")).text
    assert len(agents) == 2 and first.session_id != second.session_id  # one agent each
    await first.aclose()
    model = agents[0].model
    assert isinstance(model, ScriptedBidiModel)
    await eventually(lambda: not model.connected, what="the agent stopped its model")
    await eventually(lambda: len(server.connections) == 1, what="one session left")
    assert (await second.aturn("what is 2+2")).text == "2+2 is 4."
    await second.aclose()


@tool
async def countdown(start: int) -> AsyncIterator[str]:
    """Count down from start, reporting each step.

    Args:
        start: Where to start counting.
    """
    for step in range(start, 0, -1):
        yield f"{step}..."
        await asyncio.sleep(0)
    yield "lift-off"


async def test_streaming_tools_send_their_progress(agent_server: AgentServer) -> None:
    model_script = [{"tool": "countdown", "input": {"start": 3}, "say": "Done: {result}"}]
    server = await agent_server(lambda: BidiAgent(
        model=ScriptedBidiModel(model_script, pace=0), tools=[countdown]))
    agent = await aconnect(server.url, timeout=TIMEOUT)
    answer = await agent.aturn("go")
    progress = [e.data["tool_stream_event"]["data"] for e in answer.events
                if e.type == "tool_stream"]
    assert progress == ["3...", "2...", "1...", "lift-off"]  # the last one is the result
    assert answer.text == "Done: lift-off"
    await agent.aclose()


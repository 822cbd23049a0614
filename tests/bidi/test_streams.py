"""WebSocketInput and WebSocketOutput under BidiAgent.run, over an in-memory session."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest
from strands import tool
from strands.bidi import BidiAgent

from nbstream import StreamClosed
from nbstream.protocol import ErrorCode, Message, StreamError, encode
from nbstream.strands import ScriptedBidiModel, WebSocketInput, WebSocketOutput
from tests.bidi.conftest import MemoryConversation, agent_on, types
from tests.conftest import TIMEOUT

Running = tuple[MemoryConversation, asyncio.Task[None]]


def deltas(messages: list[Message], kind: str = "bidi_text_delta") -> str:
    return "".join(m.data["delta"] for m in messages if m.type == kind)


async def test_a_tool_turn_over_the_wire(running: Running) -> None:
    conversation, _ = running
    conversation.put("bidi_text_input", text="what is 6*7")
    first = await conversation.until("bidi_response_stop")
    second = await conversation.until("bidi_response_stop")
    assert types(first) == ["bidi_connection_start", "bidi_response_start",
                            "bidi_tool_use_blocks", "bidi_response_stop"]
    assert types(second)[:3] == ["tool_result", "tool_result_message", "bidi_response_start"]
    assert deltas(second) == "6*7 is 42."
    assert second[0].data["tool_result"]["content"] == [{"text": "42"}]
    audio = [m for m in second if m.type == "bidi_audio_delta"]
    assert audio and all(base64.b64decode(m.data["audio"]) for m in audio)
    for message in first + second:
        encode(message)  # every envelope is plain JSON


async def test_hostile_inputs_get_errors_and_the_conversation_goes_on(
        running: Running) -> None:
    conversation, task = running
    await conversation.until("bidi_connection_start")
    hostile = [
        conversation.put("bidi_video_input", frames=[]),
        conversation.put("bidi_audio_input", audio="%%% not base64 %%%"),
        conversation.put("bidi_audio_input", audio=base64.b64encode(bytes(300_000)).decode()),
        conversation.put("bidi_text_input", words="hi"),
    ]
    for sent in hostile:
        reply = (await conversation.until("error"))[-1]
        error = StreamError.from_dict(reply.data)
        assert error.code == ErrorCode.INVALID_MESSAGE and error.recoverable
        assert error.details["id"] == sent.id
    conversation.put("bidi_text_input", text="hello")
    answer = await conversation.until("bidi_response_stop")
    assert deltas(answer) == "Hello! Ask me a sum."
    assert not task.done()


async def test_audio_over_the_wire_is_answered_by_its_length(running: Running) -> None:
    conversation, _ = running
    half_second = base64.b64encode(bytes(16_000)).decode()
    conversation.put("bidi_audio_input", audio=half_second, format="pcm", sample_rate=16_000)
    conversation.put("bidi_audio_input", audio=half_second)
    answer = await conversation.until("bidi_response_stop")
    assert deltas(answer, "bidi_transcript_delta").startswith("(1.00 s of audio)")
    assert deltas(answer) == "I heard 1.0 seconds of audio."


async def test_the_input_takes_the_models_audio_format() -> None:
    conversation = MemoryConversation()
    agent = BidiAgent(model=ScriptedBidiModel(pace=0, audio_gap=0.05,
                                              input_sample_rate=24_000))
    source = WebSocketInput(conversation)
    task = asyncio.create_task(agent.run(inputs=[source], outputs=[WebSocketOutput(conversation)]))
    pcm = base64.b64encode(bytes(4_800)).decode()
    conversation.put("bidi_audio_input", audio=pcm, sample_rate=16_000)
    refused = (await conversation.until("error"))[-1]
    assert "24000" in refused.data["message"] and source.refused == 1
    conversation.put("bidi_audio_input", audio=pcm, sample_rate=24_000)
    answer = await conversation.until("bidi_response_stop")
    assert deltas(answer) == "You said: (0.10 s of audio)"
    conversation.leave()
    with pytest.raises(StreamClosed):
        await asyncio.wait_for(task, TIMEOUT)


async def test_a_client_leaving_ends_run_and_stops_the_agent() -> None:
    conversation = MemoryConversation()
    agent = agent_on()
    output = WebSocketOutput(conversation)
    task = asyncio.create_task(agent.run(inputs=[WebSocketInput(conversation)],
                                         outputs=[output]))
    conversation.put("bidi_text_input", text="hi")
    await conversation.until("bidi_response_stop")
    conversation.leave()
    with pytest.raises(StreamClosed, match="1000"):
        await asyncio.wait_for(task, TIMEOUT)
    assert isinstance(agent.model, ScriptedBidiModel) and not agent.model.connected
    assert output.sent >= 10


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


async def test_streaming_tools_send_their_progress() -> None:
    conversation = MemoryConversation()
    model = ScriptedBidiModel([{"tool": "countdown", "input": {"start": 3},
                                "say": "Done: {result}"}], pace=0)
    agent = BidiAgent(model=model, tools=[countdown])
    task = asyncio.create_task(agent.run(inputs=[WebSocketInput(conversation)],
                                         outputs=[WebSocketOutput(conversation)]))
    conversation.put("bidi_text_input", text="go")
    await conversation.until("bidi_response_stop")
    answer = await conversation.until("bidi_response_stop")
    progress = [m.data["tool_stream_event"]["data"] for m in answer if m.type == "tool_stream"]
    assert progress == ["3...", "2...", "1...", "lift-off"]  # the last one is the result
    assert deltas(answer) == "Done: lift-off"
    conversation.leave()
    with pytest.raises(StreamClosed):
        await asyncio.wait_for(task, TIMEOUT)

"""ScriptedBidiModel under the real BidiAgent loop: text, audio, tools, barge-in, failures."""

from __future__ import annotations

import asyncio
import base64

import pytest
from strands.bidi import BidiAgent
from strands.bidi.models import ConnectionTimeoutError
from strands.bidi.types import AudioDelta, BidiMessage
from strands.types.content import TextBlock

from nbstream.strands import ScriptedBidiModel, ScriptedModelError, calculator
from nbstream.strands.reply import pcm_seconds
from tests.bidi.conftest import CALCULATOR_SCRIPT, agent_on, events_until, types
from tests.conftest import TIMEOUT


def text_of(events: list[dict[str, object]], kind: str, role: str = "assistant") -> str:
    return "".join(str(e["delta"]) for e in events
                   if e.get("type") == kind and e.get("role", "assistant") == role)


async def test_a_text_turn_streams_transcript_text_and_audio() -> None:
    agent = agent_on(["Hello there, friend."])
    async with agent:
        await agent.send("hi")
        events = await events_until(agent, "bidi_response_stop")
    assert types(events)[:6] == ["bidi_connection_start", "bidi_response_start",
                                 "bidi_audio_start", "bidi_transcript_start",
                                 "bidi_text_start", "bidi_transcript_delta"]
    assert text_of(events, "bidi_transcript_delta") == "Hello there, friend."
    assert text_of(events, "bidi_text_delta") == "Hello there, friend."
    audio = [base64.b64decode(e["audio"]) for e in events if e["type"] == "bidi_audio_delta"]
    assert len(audio) == 3 and all(len(chunk) == 16_000 * 2 * 40 // 1000 for chunk in audio)
    usage = next(e for e in events if e["type"] == "bidi_usage")
    assert (usage["input_tokens"], usage["output_tokens"]) == (1, 3)
    # The agent's own bookkeeping ran: blocks and history.
    assert "bidi_transcript_block" in types(events) and "bidi_text_block" in types(events)
    assert (agent.messages[0]["role"], agent.messages[0]["content"]) == ("user", [{"text": "hi"}])
    assert {"text": "Hello there, friend."} in agent.messages[1]["content"]


async def test_audio_input_is_answered_by_its_length() -> None:
    agent = agent_on()
    one_second = bytes(16_000 * 2)
    async with agent:
        for piece in range(4):  # a second and a half in four chunks, then silence
            await agent.send(AudioDelta(format="pcm",
                                        source={"bytes": one_second[: 6_000 * (piece + 1)]}))
        events = await events_until(agent, "bidi_response_stop")
    heard = text_of(events, "bidi_transcript_delta", role="user")
    assert heard == "(1.88 s of audio)"
    assert pcm_seconds(6_000 * 10, 16_000) == pytest.approx(1.875)
    assert text_of(events, "bidi_text_delta") == "I heard 1.9 seconds of audio."
    assert types(events).index("bidi_transcript_stop") < types(events).index(
        "bidi_response_start")  # the user's transcript comes first
    assert agent.messages[0]["role"] == "user"


async def test_a_tool_turn_runs_the_real_tool_and_speaks_its_result() -> None:
    agent = agent_on()
    async with agent:
        await agent.send("what is 6*7?")
        events = await events_until(agent, "bidi_response_stop", count=2)
    kinds = types(events)
    asked = next(e for e in events if e["type"] == "bidi_tool_use_blocks")
    assert asked["tool_uses"][0]["name"] == "calculator"
    assert asked["tool_uses"][0]["input"] == {"expression": "6*7"}
    result = next(e for e in events if e["type"] == "tool_result")["tool_result"]
    assert result["status"] == "success" and result["content"] == [{"text": "42"}]
    assert kinds.index("tool_result") < kinds.index("ToolResultMessageEvent")
    assert text_of(events, "bidi_text_delta") == "6*7 is 42."
    assert any("toolResult" in block and block["toolResult"]["content"] == [{"text": "42"}]
               for message in agent.messages for block in message["content"])


async def test_a_failing_tool_result_is_spoken_too() -> None:
    agent = agent_on([{"tool": "calculator", "input": {"expression": "{text}"},
                       "say": "Result: {result}"}])
    async with agent:
        await agent.send("os.system(1)")
        events = await events_until(agent, "bidi_response_stop", count=2)
    result = next(e for e in events if e["type"] == "tool_result")["tool_result"]
    assert result["status"] == "error"
    assert "not plain arithmetic" in text_of(events, "bidi_text_delta")


async def test_new_input_mid_response_barges_in() -> None:
    agent = agent_on(pace=0.02)
    async with agent:
        await agent.send("tell me a story")
        events = await events_until(agent, "bidi_text_delta")
        await agent.send("stop!")
        rest = await events_until(agent, "bidi_response_stop", count=2)
    kinds = types(rest)
    barge = kinds.index("bidi_barge_in")
    first_stop = kinds.index("bidi_response_stop")
    # The barge-in closes the open streams, then stops the response.
    assert set(kinds[barge + 1:first_stop]) >= {"bidi_audio_stop", "bidi_transcript_stop",
                                                 "bidi_text_stop"}
    spoken = text_of(events + rest[:first_stop], "bidi_text_delta")
    story = CALCULATOR_SCRIPT[2]["say"]
    assert spoken and story.startswith(spoken) and len(spoken) < len(story)
    assert text_of(rest[first_stop:], "bidi_text_delta") == "Hello! Ask me a sum."
    # History keeps the cut answer, then the interruption, then the new answer.
    texts = [block.get("text") for m in agent.messages for block in m["content"]]
    assert "stop!" in texts and spoken in texts


async def test_tool_results_do_not_barge_in() -> None:
    agent = agent_on(pace=0.01)
    async with agent:
        await agent.send("what is 2+3")
        await agent.send("hello")  # answered while the tool runs
        events = await events_until(agent, "bidi_response_stop", count=3)
    assert "bidi_barge_in" not in types(events)
    assert "2+3 is 5." in text_of(events, "bidi_text_delta")


async def test_a_fail_turn_fails_the_connection() -> None:
    agent = agent_on()
    async with agent:
        await agent.send("crash now")
        with pytest.raises(ScriptedModelError, match="fell over"):
            await events_until(agent, "bidi_response_stop")


async def test_a_timeout_turn_restarts_the_connection_and_goes_on() -> None:
    agent = agent_on()
    model = agent.model
    assert isinstance(model, ScriptedBidiModel)
    async with agent:
        await agent.send("please hang up")
        events = await events_until(agent, "bidi_connection_start", count=2)
        restart = next(e for e in events if e["type"] == "bidi_connection_restart")
        assert restart["reason"] == "timeout"
        assert isinstance(restart["timeout_error"], ConnectionTimeoutError)
        assert model.connections == 2
        await agent.send("hi again")
        after = await events_until(agent, "bidi_response_stop")
    assert text_of(after, "bidi_text_delta") == "Hello! Ask me a sum."


async def test_without_auto_restart_a_timeout_ends_receive() -> None:
    agent = agent_on(auto_restart=False)
    async with agent:
        await agent.send("hang up")
        with pytest.raises(ConnectionTimeoutError):
            await events_until(agent, "bidi_response_stop")


async def test_pace_sets_the_time_between_words() -> None:
    agent = agent_on(["one two three four five six"], pace=0.05)
    loop = asyncio.get_running_loop()
    async with agent:
        started = loop.time()
        await agent.send("go")
        await events_until(agent, "bidi_response_stop")
        took = loop.time() - started
    assert 6 * 0.05 <= took < 6 * 0.05 + TIMEOUT / 2


async def test_unknown_script_tools_are_refused_at_start() -> None:
    agent = BidiAgent(model=ScriptedBidiModel([{"tool": "weather", "say": "{result}"}]),
                      tools=[calculator])
    with pytest.raises(ValueError, match=r"calls \['weather'\].*only has \['calculator'\]"):
        await agent.start()
    await agent.stop()


async def test_model_interface_contract() -> None:
    model = ScriptedBidiModel(["hi"], pace=0.5)
    with pytest.raises(RuntimeError, match="not started"):
        await model.send(BidiMessage(content=[TextBlock("x")]))
    with pytest.raises(RuntimeError, match="not started"):
        await anext(aiter(model.receive()))
    await model.start()
    with pytest.raises(RuntimeError, match="already started"):
        await model.start()
    with pytest.raises(ValueError, match="not supported"):
        await model.send(BidiMessage(content=[]))
    await model.stop()
    await model.stop()  # twice is fine
    assert model.model_id == "nbstream-scripted"
    assert model.get_audio_config()["input"] == {"sample_rate": 16_000, "channels": 1,
                                                 "format": "pcm"}
    model.update_config(params={"pace": 0.0, "modalities": ["text"]}, model_id="m2")
    assert model.get_config()["params"]["modalities"] == ["text"] and model.pace == 0.0
    assert model.model_id == "m2"
    for bad in ({"params": {"speed": 1}}, {"colour": 1}, {"params": {"pace": -1}},
                {"params": {"modalities": ["video"]}}, {"params": {"chunk_ms": 0}}):
        with pytest.raises(ValueError):
            model.update_config(**bad)


async def test_stop_ends_a_response_being_spoken() -> None:
    agent = agent_on(pace=0.05)
    await agent.start()
    await agent.send("tell me a story")
    await events_until(agent, "bidi_text_delta")
    await asyncio.wait_for(agent.stop(), TIMEOUT)
    assert isinstance(agent.model, ScriptedBidiModel) and not agent.model.connected


async def test_cancel_reports_the_connection_it_stops() -> None:
    agent = agent_on()
    async with agent:
        start = (await events_until(agent, "bidi_connection_start"))[-1]
        await agent.send("what is 1+2")
        await events_until(agent, "bidi_tool_use_blocks")
        agent.cancel()  # takes effect once the tool group is done
        events = await events_until(agent, "bidi_connection_stop")
    assert events[-1]["connection_id"] == start["connection_id"]

"""The agent client: barge-in, events as they come, answers and their timings."""

from __future__ import annotations

import base64

import pytest

from nbstream.protocol import ErrorCode, Message, StreamError
from nbstream.strands import AgentClient, AgentEvent, AgentTurn, aconnect
from nbstream.strands.received import MODEL_ERROR, AnswerTracker
from tests.bidi.conftest import CALCULATOR_SCRIPT, AgentServer, agent_on, client_of
from tests.conftest import TIMEOUT


async def test_interrupting_a_story_barges_in_and_the_interruption_is_answered(
        agent_server: AgentServer) -> None:
    server = await agent_server(lambda: agent_on(pace=0.05))
    agent = await aconnect(server.url, timeout=TIMEOUT)
    await agent.asay("tell me a story")
    async for event in agent.events():
        if event.type == "bidi_audio_delta":
            break
    cut = await agent.ainterrupt("stop!")
    assert cut.interrupted and cut.barge_in is not None and 0 <= cut.barge_in < TIMEOUT
    assert cut.types[-1] == "bidi_response_stop"
    assert cut.types.index("bidi_barge_in") < cut.types.index("bidi_response_stop")
    assert "bidi_usage" not in cut.types  # a cut response reports no usage
    story = CALCULATOR_SCRIPT[2]["say"]
    assert len(cut.transcript) < len(story)
    answer = await agent.aresponse()
    assert answer.transcript == "Hello! Ask me a sum." and not answer.interrupted
    await agent.aclose()


async def test_an_interrupt_with_nothing_to_cut_ends_at_the_answer(agent: AgentClient) -> None:
    await agent.aturn("hello")
    turn = await agent.ainterrupt("what is 1+2")
    assert not turn.interrupted and turn.barge_in is None
    assert turn.types[-1] == "bidi_response_stop"


async def test_events_end_when_the_server_closes_the_session(
        agent_server: AgentServer) -> None:
    server = await agent_server()
    agent = await aconnect(server.url, timeout=TIMEOUT)
    await agent.asay("hello")
    seen = []
    async for event in agent.events():
        seen.append(event.type)
        if event.type == "bidi_response_stop":
            await server.adisconnect(agent.session_id or "")  # 1000: the session ends
    client = client_of(agent)
    assert seen[-1] == "bidi_response_stop" and client.closed is not None
    assert client.closed.code == 1000


async def test_a_refused_input_raises_from_turn(agent: AgentClient) -> None:
    with pytest.raises(StreamError) as refused:
        await agent.aturn(" ")
    assert refused.value.code == ErrorCode.INVALID_MESSAGE
    with pytest.raises(TypeError, match="takes a str"):
        await agent.asay(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes bytes"):
        await agent.asend_audio("pcm")  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        await agent.aresponse(timeout=0.1)  # nothing asked, nothing comes


def event(kind: str, at: float = 0.0, **data: object) -> AgentEvent:
    return AgentEvent(kind, data, "e:0", at)


def test_an_answer_ends_after_the_response_that_follows_its_tools() -> None:
    tracker = AnswerTracker("in-1")
    steps = [event("bidi_connection_start"), event("bidi_response_start"),
             event("bidi_tool_use_blocks", tool_uses=[]), event("bidi_response_stop"),
             event("tool_result"), event("tool_result_message"),
             event("bidi_response_start"), event("bidi_response_stop")]
    assert [tracker.feed(e) for e in steps] == [False] * 7 + [True]
    other = StreamError(ErrorCode.INVALID_MESSAGE, details={"id": "someone-else"})
    assert not AnswerTracker("in-1").feed(event("error", **other.to_dict()))
    mine = StreamError(ErrorCode.INVALID_MESSAGE, details={"id": "in-1"})
    tracker = AnswerTracker("in-1")
    assert tracker.feed(event("error", **mine.to_dict())) and tracker.error == mine
    failed = StreamError(MODEL_ERROR, "down", recoverable=True)
    assert AnswerTracker().feed(event("error", **failed.to_dict()))
    assert AnswerTracker().feed(event("bidi_connection_stop"))
    assert AnswerTracker(first_stop=True).feed(event("bidi_response_stop"))


def test_a_turns_timings_and_contents() -> None:
    pcm = bytes(range(8))
    turn = AgentTurn([
        event("bidi_response_start", 1.0),
        event("bidi_tool_use_blocks", 1.1, tool_uses=[
            {"toolUseId": "t1", "name": "calculator", "input": {"expression": "1+1"}}]),
        event("tool_result", 1.4, tool_result={"toolUseId": "t1", "status": "success",
                                                "content": [{"text": "2"}]}),
        event("bidi_transcript_delta", 1.5, delta="Two", role="assistant"),
        event("bidi_transcript_delta", 1.5, delta="(heard)", role="user"),
        event("bidi_audio_delta", 1.6, audio=base64.b64encode(pcm).decode()),
        AgentEvent("bidi_audio_delta", {"audio_bytes": 3, "binary": True}, "e:7", 1.7, b"abc"),
        event("bidi_barge_in", 1.9),
        event("bidi_response_stop", 2.0),
    ], sent_at=1.0, interrupted_at=1.8)
    assert turn.timings() == pytest.approx({
        "first_transcript": 0.5, "first_audio": 0.6, "duration": 1.0, "barge_in": 0.1,
        "tool_round_trip": 0.3})
    assert (turn.transcript, turn.heard, turn.audio) == ("Two", "(heard)", pcm + b"abc")
    assert turn.tools == [{"name": "calculator", "input": {"expression": "1+1"},
                           "status": "success", "result": "2"}]
    assert turn.interrupted and "interrupted" in repr(turn) and len(turn) == 9
    assert AgentTurn().timings() == dict.fromkeys(turn.timings())
    broken = AgentEvent.of(Message("bidi_audio_delta", {"audio": "%%"}), 0.0)
    assert broken.audio == b"" and broken.delta == "" and broken.role is None
    assert "<4 chars>" in repr(event("bidi_audio_delta", audio="AAAA"))

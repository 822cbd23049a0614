"""TurnLog and TurnView on the envelopes of real agent runs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

from nbstream.events import FlowEvent
from nbstream.protocol import Message, StreamError
from nbstream.strands import AgentClient, TurnLog, TurnView, aconnect
from nbstream.views import FlowView
from nbstream.views.commlog import CommLog, record_comms
from tests.bidi.conftest import CALCULATOR_SCRIPT, AgentServer, agent_on, read_until
from tests.conftest import TIMEOUT, eventually


@pytest.fixture
def comms() -> Iterator[CommLog]:
    with record_comms() as log:
        yield log


async def converse(agent: AgentClient) -> None:
    """A tool turn, a story cut by a barge-in, its answer, and an audio turn."""
    await agent.aturn("what is 6*7")
    await agent.asay("tell me a story")
    await read_until(agent, "bidi_text_delta")
    await agent.ainterrupt("stop!")
    await agent.aresponse()
    await agent.asend_audio(bytes(32_000), chunk_ms=500)
    await agent.aresponse()


async def test_turns_of_a_conversation_seen_from_the_server_and_the_client(
        agent_server: AgentServer) -> None:
    server = await agent_server(lambda: agent_on(pace=0.02))
    on_server, on_client = TurnLog(), TurnLog()
    server.events.subscribe(on_server.fold)
    agent = await aconnect(server.url, timeout=TIMEOUT)
    agent.events.subscribe(on_client.fold)
    await converse(agent)

    for log in (on_server, on_client):
        tool_turn, story, interruption, audio = log.turns()
        assert (tool_turn.user, tool_turn.assistant, tool_turn.text) == (
            "what is 6*7", "6*7 is 42.", "6*7 is 42.")
        assert [(t.name, t.input, t.status, t.result) for t in tool_turn.tools] == [
            ("calculator", {"expression": "6*7"}, "success", "42")]
        assert tool_turn.state == "done" and tool_turn.audio_chunks == 3
        assert tool_turn.audio == [1_280] * 3 and tool_turn.audio_bytes == 3_840
        assert tool_turn.first_output_at is not None and tool_turn.ended is not None
        assert tool_turn.started <= tool_turn.first_output_at <= tool_turn.ended

        assert story.state == "interrupted" and story.barge_in_at is not None
        assert story.assistant and CALCULATOR_SCRIPT[2]["say"].startswith(story.assistant)
        assert (interruption.user, interruption.assistant) == ("stop!", "Hello! Ask me a sum.")
        assert audio.user == "(1.00 s of audio)" and audio.user_audio_bytes == 32_000
        assert audio.assistant == "I heard 1.0 seconds of audio."
        assert [t.index for t in log.turns()] == [1, 2, 3, 4]
        assert log.sessions() == [agent.session_id]
        json.dumps([t.to_json() for t in log.turns()])
    await agent.aclose()
    await eventually(lambda: on_server.turns()[-1].state == "done", what="still done")


def flow(kind: str, data: dict[str, object], session: str = "s", direction: str = "s2c",
         at: float = 0.0) -> FlowEvent:
    return FlowEvent("out", "server", session, direction="c2s" if direction == "c2s" else "s2c",
                     message=Message(kind, data), at=at or time.time())


def test_a_connection_closing_mid_turn_cuts_it() -> None:
    log = TurnLog()
    log.fold(flow("bidi_text_input", {"text": "hi"}, direction="c2s"))
    log.fold(flow("bidi_response_start", {"response_id": "r"}))
    assert log.turns()[0].state == "speaking"
    assert log.fold(FlowEvent("close", "server", "s", at=1.0))
    assert log.turns()[0].state == "cut" and log.turns()[0].ended == 1.0


def test_the_log_is_bounded_and_ignores_other_traffic() -> None:
    log = TurnLog(max_turns=3, max_sessions=2)
    for session in ("a", "b", "c"):
        for n in range(5):
            log.fold(flow("bidi_text_input", {"text": f"{n}"}, session, "c2s"))
    assert log.sessions() == ["b", "c"]
    assert [t.user for t in log.turns("c")] == ["2", "3", "4"]
    assert [t.index for t in log.turns()] == [3, 4, 5]
    assert log.turns("gone") == []
    assert not log.fold(flow("chat", {"text": "x"}, direction="c2s"))
    assert not log.fold(flow("welcome", {}))
    assert not log.fold(FlowEvent("heartbeat", "server", "c"))
    assert not log.fold(FlowEvent("close", "server", "never-seen"))
    with pytest.raises(ValueError):
        TurnLog(max_turns=0)


def test_a_response_with_nothing_waiting_continues_the_last_turn() -> None:
    log = TurnLog()
    log.fold(flow("bidi_transcript_delta", {"role": "user", "delta": "spoken"}))
    log.fold(flow("bidi_response_start", {}))
    log.fold(flow("bidi_transcript_delta", {"role": "assistant", "delta": "ok"}))
    log.fold(flow("bidi_audio_delta", {"audio_bytes": 640, "binary": True}))
    log.fold(flow("bidi_response_stop", {}))
    log.fold(flow("bidi_response_start", {}))
    log.fold(flow("error", {"code": "INVALID_MESSAGE", "message": "bad base64"}))
    log.fold(flow("bidi_response_stop", {}))
    (turn,) = log.turns()
    assert (turn.user, turn.assistant, turn.audio_bytes) == ("spoken", "ok", 640)
    assert turn.notes == ["bad base64"]


async def test_turn_view_follows_the_latest_session_with_few_pushes(
        agent_server: AgentServer, comms: CommLog) -> None:
    server = await agent_server()
    view = TurnView(server, title="agent")
    agent = await aconnect(server.url, timeout=TIMEOUT)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(3):
        await agent.aturn("what is 1+1")
    await eventually(lambda: "1+1 is 2." in view.turns_json and view.total_turns == 3,
                     what="the view shows three answered turns")
    seconds = loop.time() - started
    shown = json.loads(view.turns_json)
    assert [t["state"] for t in shown] == ["done"] * 3
    assert view.sessions == [agent.session_id]
    assert comms.updates(view) <= 10 * seconds + 3  # throttled, whatever the event count
    assert view.pushes >= 1
    view.session = "someone-else"
    await eventually(lambda: view.turns_json == "[]", what="an unknown session shows nothing")
    assert "0 turns" in repr(view)
    view.close()
    view.close()
    await agent.aclose()


async def test_turn_view_and_flow_view_watch_an_agent_client(
        agent_server: AgentServer, comms: CommLog) -> None:
    server = await agent_server()
    agent = await aconnect(server.url, timeout=TIMEOUT)
    turns, flow = TurnView(agent), FlowView(agent)
    await agent.aturn("what is 2*3")
    await eventually(lambda: "2*3 is 6." in turns.turns_json, what="the client's turn shown")
    await eventually(lambda: "bidi_tool_use_blocks" in flow.rows_json,
                     what="the client's frames in the flow")
    assert "AgentClient" in turns.title
    turns.close()
    flow.close()
    await agent.aclose()


async def test_refused_inputs_and_model_failures_keep_their_own_turns(
        agent_server: AgentServer) -> None:
    server = await agent_server()
    log = TurnLog()
    server.events.subscribe(log.fold)
    agent = await aconnect(server.url, timeout=TIMEOUT, binary_audio=True)
    await agent.client.asend("bidi_text_input", {"words": "no text"})
    await read_until(agent, "error")
    with pytest.raises(StreamError):
        await agent.aturn("crash")
    await agent.aturn("what is 10/4")
    await agent.asend_audio(bytes(16_000), chunk_ms=100)
    await agent.aresponse()
    refused, failed, answered, heard = log.turns()
    assert refused.state == "refused" and "data.text" in refused.notes[0]
    assert failed.state == "failed" and "fell over" in failed.notes[0]
    assert (answered.state, answered.user, answered.text) == ("done", "what is 10/4",
                                                              "10/4 is 2.5.")
    assert [t.name for t in answered.tools] == ["calculator"]
    assert (heard.state, heard.user_audio_chunks, heard.user_audio_bytes) == ("done", 5, 16_000)
    assert heard.assistant == "I heard 0.5 seconds of audio."
    await agent.aclose()

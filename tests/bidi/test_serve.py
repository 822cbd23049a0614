"""serve_agent: every server feature applies to agents; model failures and shutdowns."""

from __future__ import annotations

import asyncio
import logging
import ssl
import urllib.request
from typing import Any

import pytest
from strands import ToolContext, tool
from strands.bidi import BidiAgent

import nbstream
from nbstream.protocol import StreamClosed, StreamError
from nbstream.strands import (
    AgentClient,
    ScriptedBidiModel,
    aconnect,
    agent_handler,
    calculator,
    serve_agent,
)
from nbstream.strands.received import MODEL_ERROR
from tests.bidi.conftest import (
    CALCULATOR_SCRIPT,
    AgentServer,
    agent_on,
    client_of,
    read_until,
)
from tests.conftest import TIMEOUT, eventually, eventually_sync


@tool(context=True)
def whoami(tool_context: ToolContext) -> str:
    """Say which user and session this is."""
    state = tool_context.invocation_state
    return f"{state['user']} in {state['session_id']}"


def who_agent() -> BidiAgent:
    script = [{"when": "who", "tool": "whoami", "say": "You are {result}."}, *CALCULATOR_SCRIPT]
    return BidiAgent(model=ScriptedBidiModel(script, pace=0), tools=[calculator, whoami])



async def test_auth_origins_tls_heartbeats_and_metrics_apply_to_agents(
        agent_server: AgentServer, certificates: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_tls, client_tls = certificates
    server = await agent_server(who_agent, auth={"tok-alice": "alice"}, ssl=server_tls,
                                allowed_origins=["http://notebook.example"], metrics=True,
                                heartbeat_interval=0.05, heartbeat_timeout=TIMEOUT,
                                auth_timeout=0.3)
    assert server.url.startswith("wss://")
    heartbeats: list[float] = []
    server.events.subscribe(lambda e: heartbeats.append((e.detail or {})["rtt"])
                            if e.kind == "heartbeat" else None)
    agent = await aconnect(server.url, token="tok-alice", ssl=client_tls,
                           origin="http://notebook.example", timeout=TIMEOUT)
    answer = await agent.aturn("who am I?")
    assert answer.text == f"You are alice in {agent.session_id}."
    await eventually(lambda: len(heartbeats) >= 2, what="pings answered while it talks")
    assert (await agent.aturn("what is 3*3")).text == "3*3 is 9."

    with pytest.raises(StreamClosed):
        await aconnect(server.url, ssl=client_tls, timeout=TIMEOUT, reconnect=False)
    with pytest.raises(StreamClosed):
        await aconnect(server.url, token="tok-alice", ssl=client_tls,
                       origin="http://evil.example", reconnect=False)
    metrics_url = server.health_url.replace("/health", "/metrics")

    def scrape() -> str:
        with urllib.request.urlopen(metrics_url, context=client_tls, timeout=TIMEOUT) as r:
            return str(r.read().decode())

    text = await asyncio.to_thread(scrape)
    assert "nbstream_sessions 1.0" in text and 'type="bidi_text_delta"' in text
    await agent.aclose()


async def test_a_model_failure_is_a_structured_error_and_the_agent_starts_again(
        agent: AgentClient) -> None:
    with pytest.raises(StreamError) as failed:
        await agent.aturn("crash")
    error = failed.value
    assert error.code == MODEL_ERROR and error.recoverable
    assert error.details["error"] == "ScriptedModelError" and error.details["restarting"]
    assert "fell over" in error.message
    answer = await agent.aturn("what is 6*7")  # the same session, a new model connection
    assert answer.types[0] == "bidi_connection_start" and answer.text == "6*7 is 42."
    assert client_of(agent).reconnects == 0 and client_of(agent).closed is None


async def test_a_model_that_keeps_failing_ends_the_session_with_1011(
        agent_server: AgentServer, caplog: pytest.LogCaptureFixture) -> None:
    server = await agent_server(lambda: agent_on([{"fail": "down"}]), max_model_failures=2)
    agent = await aconnect(server.url, timeout=TIMEOUT, reconnect=False)
    with caplog.at_level(logging.CRITICAL, logger="nbstream.server.live"):
        with pytest.raises(StreamError, match="down") as one:
            await agent.aturn("one")
        assert one.value.recoverable
        with pytest.raises(StreamError, match="down") as two:
            await agent.aturn("two")
        assert not two.value.recoverable and not two.value.details["restarting"]
        events = await read_until(agent, "error")
        assert events[-1].error is not None and events[-1].error.code == "INTERNAL_ERROR"
        with pytest.raises(StreamClosed) as closed:
            await agent.anext_event()
    assert closed.value.code == 1011


@pytest.mark.parametrize(("grace", "outcome"), [(TIMEOUT, "finished"), (0.2, "cut")])
async def test_a_graceful_shutdown_mid_response_stops_the_agent_and_says_so(
        agent_server: AgentServer, grace: float, outcome: str) -> None:
    pace = 0.02 if outcome == "finished" else 1.0
    server = await agent_server(lambda: agent_on(pace=pace))
    agent = await aconnect(server.url, timeout=TIMEOUT, reconnect=False)
    await agent.asay("tell me a story")
    await read_until(agent, "bidi_text_delta")
    stopping = asyncio.create_task(server.astop(timeout=grace))
    rest = await read_until(agent, "bidi_connection_stop", timeout=grace + TIMEOUT)
    kinds = [event.type for event in rest]
    assert "server_shutdown" in kinds
    if outcome == "finished":
        assert kinds.index("bidi_response_stop") < kinds.index("bidi_connection_stop")
        text = "".join(e.delta for e in rest if e.type == "bidi_text_delta")
        assert text.endswith("without an end in sight.")
    else:
        assert "bidi_response_stop" not in kinds
    assert rest[-1].get("reason") == "user_request" and rest[-1].get("connection_id")
    report = await stopping
    assert getattr(report, outcome) == [agent.session_id]
    with pytest.raises(StreamClosed) as closed:
        await agent.anext_event()
    assert closed.value.code == 1001


def test_serve_agent_from_plain_code_and_its_argument_checks() -> None:
    server = serve_agent(agent_on, thread=True)
    try:
        agent = nbstream.strands.connect(server.url, timeout=TIMEOUT)
        assert agent.turn("what is 2*21").text == "2*21 is 42."
        agent.close()
        eventually_sync(lambda: len(server.connections) == 0, what="the session ended")
    finally:
        server.stop()
    with pytest.raises(TypeError, match="agent_factory"):
        agent_handler("not a factory")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_model_failures"):
        agent_handler(agent_on, max_model_failures=0)
    with pytest.raises(TypeError, match="unknown"):
        serve_agent(agent_on, no_such_option=1)


async def test_a_factory_that_returns_no_agent_fails_the_session(
        agent_server: AgentServer, caplog: pytest.LogCaptureFixture) -> None:
    def wrong() -> Any:
        return "an agent?"

    server = await agent_server(wrong)
    with caplog.at_level(logging.CRITICAL, logger="nbstream.server.live"):
        agent = await aconnect(server.url, timeout=TIMEOUT, reconnect=False)
        event = await agent.anext_event()
    assert event.error is not None and event.error.code == "INTERNAL_ERROR"

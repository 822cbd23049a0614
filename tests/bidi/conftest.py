"""Real Strands agents on the scripted model, served on real sockets by ``serve_agent``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from strands.bidi import BidiAgent

import nbstream
from nbstream.client import Client
from nbstream.protocol import Message
from nbstream.strands import (
    AgentClient,
    AgentEvent,
    ScriptedBidiModel,
    aconnect,
    aserve_agent,
    calculator,
)
from tests.conftest import TIMEOUT

CALCULATOR_SCRIPT: list[Any] = [
    {"when": r"what is (?P<expr>[-+*/ 0-9.()]+)", "tool": "calculator",
     "input": {"expression": "{expr}"}, "say": "{expr} is {result}."},
    {"when": "of audio", "say": "I heard {seconds:.1f} seconds of audio."},
    {"when": "story", "say": "Once upon a time there was a very long story that went on "
                             "and on and on for ever and ever without an end in sight."},
    {"when": "crash", "fail": "the scripted model fell over"},
    {"when": "hang up", "timeout": True},
    "Hello! Ask me a sum.",
]


def agent_on(script: Any = CALCULATOR_SCRIPT, **model_options: Any) -> BidiAgent:
    """A real BidiAgent with the calculator tool on a scripted model (fast pace)."""
    options = {"pace": 0.002, "audio_gap": 0.05, **model_options}
    return BidiAgent(model=ScriptedBidiModel(script, **options), tools=[calculator])


async def events_until(agent: BidiAgent, last: str, timeout: float = TIMEOUT,
                       count: int = 1) -> list[dict[str, Any]]:
    """The agent's events up to the ``count``-th of type ``last``, within ``timeout``."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async for event in agent.receive():
            seen.append(event)
            if event.get("type") == last:
                count -= 1
                if count == 0:
                    return seen
    raise AssertionError(f"the agent stopped before {last}: {types(seen)}")


def types(events: list[Any]) -> list[str]:
    """The ``type`` of each event or envelope."""
    return [e.type if isinstance(e, Message | AgentEvent) else e.get("type", type(e).__name__)
            for e in events]


def client_of(agent: AgentClient) -> Client:
    """The nbstream Client under an agent made by ``aconnect`` (``agent.client`` is
    typed as the MessageClient protocol, which lacks reconnects, closed, welcome...)."""
    return cast(Client, agent.client)


AgentServer = Callable[..., Awaitable[nbstream.Server]]


@pytest.fixture
async def agent_server() -> AsyncIterator[AgentServer]:
    """Start ``serve_agent`` servers on 127.0.0.1 (the calculator agent by default, or
    ``factory=``); every one is stopped afterwards."""
    servers: list[nbstream.Server] = []

    async def start(factory: Callable[[], BidiAgent] = agent_on,
                    **options: Any) -> nbstream.Server:
        server = await aserve_agent(factory, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.astop(timeout=1.0)


@pytest.fixture
async def agent(agent_server: AgentServer) -> AsyncIterator[AgentClient]:
    """A client of a fresh calculator agent (receives time out after TIMEOUT)."""
    server = await agent_server()
    client = await aconnect(server.url, timeout=TIMEOUT)
    yield client
    await client.aclose()


async def read_until(agent: AgentClient, last: str, count: int = 1,
                     timeout: float = TIMEOUT) -> list[AgentEvent]:
    """The agent's events up to the ``count``-th of type ``last``."""
    seen: list[AgentEvent] = []
    async with asyncio.timeout(timeout):
        while True:
            event = await agent.anext_event(timeout)
            seen.append(event)
            if event.type == last:
                count -= 1
                if count == 0:
                    return seen

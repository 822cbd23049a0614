"""Real Strands agents on the scripted model, and a stand-in for the server's session.

:class:`MemoryConversation` is an in-memory :class:`nbstream.strands.Conversation`
(two queues) standing in for the server seam that hands sessions to agents; the
server-level tests run the same agents over real sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from strands import tool
from strands.bidi import BidiAgent

from nbstream import StreamClosed
from nbstream.events import EventStream
from nbstream.protocol import BoundedHistory, Message, Session
from nbstream.strands import ScriptedBidiModel, WebSocketInput, WebSocketOutput
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


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as 6*7.

    Args:
        expression: The expression, with numbers and + - * / ( ).
    """
    allowed = set("0123456789+-*/(). ")
    if not set(expression) <= allowed:
        raise ValueError(f"not arithmetic: {expression!r}")
    return str(eval(expression, {"__builtins__": {}}))


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
    return [e.type if isinstance(e, Message) else e.get("type", type(e).__name__)
            for e in events]


class MemoryConversation:
    """An in-memory session: the agent's side implements ``Conversation``; the test
    plays the client with :meth:`put`, :meth:`until` and :meth:`leave`. Publishes
    flow events as a server would, so views can watch it."""

    def __init__(self, session_id: str = "session-1") -> None:
        self.session = Session(session_id, None, datetime.now(UTC), BoundedHistory(100, 1 << 20))
        self.events = EventStream()
        self._to_agent: asyncio.Queue[Message | None] = asyncio.Queue()
        self._to_client: asyncio.Queue[Message] = asyncio.Queue()

    async def receive(self) -> Message:
        message = await self._to_agent.get()
        if message is None:
            raise StreamClosed(1000, "the client left")
        if self.events:
            self.events.emit("in", "server", self.session.id, direction="c2s", message=message)
        return message

    async def send(self, message: Message) -> None:
        if self.events:
            self.events.emit("out", "server", self.session.id, direction="s2c", message=message)
        await self._to_client.put(message)

    def put(self, kind: str, **data: Any) -> Message:
        message = Message(kind, data)
        self._to_agent.put_nowait(message)
        return message

    def leave(self) -> None:
        self._to_agent.put_nowait(None)
        if self.events:
            self.events.emit("close", "server", self.session.id)

    async def until(self, last: str, timeout: float = TIMEOUT) -> list[Message]:
        """Envelopes sent to the client up to the next one of type ``last``."""
        seen = []
        async with asyncio.timeout(timeout):
            while True:
                message = await self._to_client.get()
                seen.append(message)
                if message.type == last:
                    return seen


@pytest.fixture
async def running() -> AsyncIterator[tuple[MemoryConversation, asyncio.Task[None]]]:
    """An agent (calculator script) running over a MemoryConversation until the test ends."""
    conversation = MemoryConversation()
    agent = agent_on()
    task = asyncio.create_task(agent.run(inputs=[WebSocketInput(conversation)],
                                         outputs=[WebSocketOutput(conversation)]))
    yield conversation, task
    if not task.done():
        conversation.leave()
        with pytest.raises(StreamClosed):
            await asyncio.wait_for(task, TIMEOUT)

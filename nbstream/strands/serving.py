"""serve_agent: a Strands ``BidiAgent`` per session, on nbstream's server.

Each session (a client's connection, and the connections that resume it) gets its
own agent from ``agent_factory()``, run with a :class:`WebSocketInput` and a
:class:`WebSocketOutput` over the session's conversation. Everything the server does
applies unchanged: limits, auth, Origin checks, TLS, heartbeats, metrics, views, and
resume (the agent keeps running while its client is away; what it sends meanwhile
is replayed). Around the agent's run this module adds what a session needs:

* a model failure is reported as an ``error`` envelope, code ``MODEL_ERROR``
  (recoverable), and the agent is started again with its history; after
  ``max_model_failures`` failures in a row the session ends with INTERNAL_ERROR (1011);
* a graceful shutdown lets the answer under way finish (until the server's deadline),
  stops the agent and sends its ``bidi_connection_stop`` before the 1001 close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from strands.bidi import BidiAgent
from strands.bidi.types.events import BidiConnectionStopEvent

from nbstream.handlers import ConversationHandler
from nbstream.protocol import CloseCode, Message, MessageType, StreamClosed, StreamError
from nbstream.server import Server, aserve, serve
from nbstream.strands.received import MODEL_ERROR
from nbstream.strands.streams import Conversation, WebSocketInput, WebSocketOutput
from nbstream.strands.wire import InputLimits, encode_event

logger = logging.getLogger(__name__)

AgentFactory = Callable[[], BidiAgent]
"""Makes the agent of one session: ``lambda: BidiAgent(model=..., tools=[...])``."""
AGENT_DEFAULTS: dict[str, Any] = {
    "history_max_messages": 2_000,
    "history_max_bytes": 4_000_000,
    "max_pending_chats": 64,
}
"""Server options ``serve_agent`` changes unless given: an agent sends several events
per spoken word, so a session keeps more of them for resume (a few seconds of speech
at the scripted model's pace), and audio clients send chunks faster than chats."""


class AgentSession:
    """One session's agent: runs it, restarts it after a model failure, stops it.

    Args:
        conversation: The session (what the server hands to a conversation handler).
        agent: The session's agent.
        limits: What inputs may be; the model's audio format replaces the defaults.
        max_model_failures: Model failures in a row after which the session ends.
    """

    def __init__(self, conversation: Conversation, agent: BidiAgent,
                 limits: InputLimits | None = None, max_model_failures: int = 3) -> None:
        self.conversation = conversation
        self.agent = agent
        self.output = WebSocketOutput(conversation)
        self.input = WebSocketInput(conversation, limits or InputLimits(), output=self.output)
        self.max_model_failures = max_model_failures
        self.failures = 0
        """Model failures so far."""

    async def run(self) -> None:
        """Run the agent until the session ends.

        Raises:
            Exception: the model's last failure, once it failed ``max_model_failures``
                times in a row (the server logs it, sends INTERNAL_ERROR, closes 1011).
        """
        session = self.conversation.session
        state = {"session_id": session.id, "user": session.user}
        in_a_row = 0
        while True:
            sent_before = self.output.sent
            try:
                await self.agent.run(inputs=[self.input], outputs=[self.output],
                                     invocation_state=state)
                return  # the agent stopped itself (agent.cancel()): it said so
            except StreamClosed as closed:
                if closed.code == CloseCode.GOING_AWAY:
                    await self._stopped()
                return
            except asyncio.CancelledError:
                await self._stopped()  # the server's deadline passed: still say so
                raise
            except Exception as exc:  # the model (or a tool outside the loop) failed
                self.failures += 1
                answered = self.output.sent > sent_before + 1  # beyond its connection start
                in_a_row = 1 if answered else in_a_row + 1
                self.output.model_failed()
                await self._report(exc, restarting=in_a_row < self.max_model_failures)
                if in_a_row >= self.max_model_failures:
                    raise

    async def _report(self, exc: Exception, *, restarting: bool) -> None:
        logger.info("session %s: the agent's model failed (%s: %s)%s",
                    self.conversation.session.id, type(exc).__name__, exc,
                    "; starting it again" if restarting else "")
        error = StreamError(MODEL_ERROR, f"the agent's model failed: {exc}",
                            recoverable=restarting,
                            details={"error": type(exc).__name__, "restarting": restarting,
                                     "connection_id": self.output.activity.connection_id})
        await self.conversation.send(Message(MessageType.ERROR, error.to_dict()))

    async def _stopped(self) -> None:
        """Tell the client the agent stopped: its ``bidi_connection_stop``."""
        connection_id = self.output.activity.connection_id or "none"
        event = BidiConnectionStopEvent(connection_id=connection_id, reason="user_request")
        await self.conversation.send(encode_event(event).message)


def agent_handler(agent_factory: AgentFactory, *, limits: InputLimits | None = None,
                  max_model_failures: int = 3) -> ConversationHandler:
    """The conversation handler that runs an agent from ``agent_factory`` per session.

    Pass it to :func:`nbstream.serve` yourself to combine it with other handlers;
    :func:`serve_agent` does it for you.
    """
    if not callable(agent_factory):
        raise TypeError("serve_agent(agent_factory): pass a function that returns a new "
                        "BidiAgent, e.g. lambda: BidiAgent(model=..., tools=[...])")
    if isinstance(max_model_failures, bool) or not isinstance(max_model_failures, int) \
            or max_model_failures < 1:
        raise ValueError(f"serve_agent(max_model_failures={max_model_failures!r}): "
                         "must be an integer, 1 or more")

    async def run_agent(conversation: Conversation) -> None:
        agent = agent_factory()
        if not isinstance(agent, BidiAgent):
            raise TypeError(f"agent_factory() returned {type(agent).__name__}, not a "
                            "strands.bidi.BidiAgent")
        await AgentSession(conversation, agent, limits, max_model_failures).run()

    return run_agent


def _options(serve_options: dict[str, Any]) -> dict[str, Any]:
    return {**AGENT_DEFAULTS, **serve_options}


async def aserve_agent(agent_factory: AgentFactory, *, limits: InputLimits | None = None,
                       max_model_failures: int = 3, **serve_options: Any) -> Server:
    """Serve an agent per session from async code; see :func:`serve_agent`."""
    handler = agent_handler(agent_factory, limits=limits,
                            max_model_failures=max_model_failures)
    return await aserve(handler, **_options(serve_options))


def serve_agent(agent_factory: AgentFactory, *, limits: InputLimits | None = None,
                max_model_failures: int = 3, **serve_options: Any) -> Server:
    """Serve a Strands ``BidiAgent`` over WebSocket: one agent per session.

    Args:
        agent_factory: Called once per session for its agent, e.g.
            ``lambda: BidiAgent(model=ScriptedBidiModel(script), tools=[calculator])``.
        limits: Input sizes (:class:`InputLimits`); the audio format is the model's.
        max_model_failures: Model failures in a row after which a session ends (each
            one is reported as a ``MODEL_ERROR`` error envelope and the agent restarts).
        **serve_options: Everything :func:`nbstream.serve` takes: ``host``, ``port``,
            ``auth``, ``allowed_origins``, ``ssl``, ``metrics``, ``session_ttl``,
            heartbeats, limits... (see :class:`nbstream.ServerOptions`).

    Returns:
        The running :class:`nbstream.Server`; talk to it with
        ``nbstream.strands.connect(server.url)``, stop it with ``server.stop()``.
    """
    handler = agent_handler(agent_factory, limits=limits,
                            max_model_failures=max_model_failures)
    return serve(handler, **_options(serve_options))

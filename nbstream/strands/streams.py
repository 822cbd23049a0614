"""WebSocketInput and WebSocketOutput: a Strands agent's I/O streams over an nbstream session.

``BidiAgent.run(inputs=[...], outputs=[...])`` reads its input from input streams and
hands every event to output streams (the SDK's ``InputStream`` and ``OutputStream``).
These two read client envelopes from, and send event envelopes to, a
:class:`Conversation`: the session-level view of one nbstream connection that the
server gives to an agent (``serve_agent`` wires them up), with resume, history and
views behind it. The mapping itself is :mod:`nbstream.strands.wire`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from strands.bidi.models import AudioCapable
from strands.bidi.types import InputStream, OutputStream
from strands.bidi.types.events import BidiOutputEvent

from nbstream.protocol import Message, MessageType, Session
from nbstream.strands.wire import (
    DEFAULT_LIMITS,
    AgentInput,
    InputLimits,
    decode_input,
    encode_event,
)

if TYPE_CHECKING:
    from strands.bidi import BidiAgent


class Conversation(Protocol):
    """One client's session as an agent sees it.

    ``receive()`` returns the client's next envelope and raises
    :class:`nbstream.StreamClosed` when the session ends; ``send()`` puts an envelope
    into the session's stream (its history, resume and views).
    """

    session: Session

    async def receive(self) -> Message:
        """The client's next envelope."""
        ...

    async def send(self, message: Message) -> None:
        """Send an envelope to the client, through the session's stream."""
        ...


class WebSocketInput(InputStream):
    """The agent's input: the client's ``bidi_*_input`` envelopes, decoded.

    A bad envelope is answered with an ``error`` envelope (INVALID_MESSAGE, saying what
    to fix) and the next one is read: the connection goes on. When the session ends,
    the call raises :class:`nbstream.StreamClosed`, which ends ``agent.run()``.

    Args:
        conversation: The session to read from (and to send errors to).
        limits: Sizes accepted; the audio format is taken from the agent's model at
            :meth:`start` when the model says what it takes.
    """

    def __init__(self, conversation: Conversation, limits: InputLimits = DEFAULT_LIMITS) -> None:
        self.conversation = conversation
        self.limits = limits
        self.refused = 0
        """How many envelopes were answered with an error."""

    async def start(self, agent: BidiAgent) -> None:
        """Adopt the audio format the agent's model expects, if it says."""
        model = agent.model
        if isinstance(model, AudioCapable):
            expected = model.get_audio_config()["input"]
            self.limits = replace(self.limits, sample_rate=expected["sample_rate"],
                                  channels=expected["channels"],
                                  audio_format=expected["format"])

    async def stop(self) -> None:
        """Nothing to release: the session belongs to the server."""

    async def __call__(self) -> AgentInput:
        """The next valid input from the client (errors answered on the way)."""
        while True:
            message = await self.conversation.receive()
            decoded = decode_input(message, limits=self.limits)
            if not isinstance(decoded, Exception):
                return decoded
            self.refused += 1
            await self.conversation.send(Message(MessageType.ERROR, decoded.to_dict()))


class WebSocketOutput(OutputStream):
    """The agent's output: every event as one envelope of the same ``type``.

    Args:
        conversation: The session to send to.
    """

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self.sent = 0
        """How many events were sent."""

    async def start(self, agent: BidiAgent) -> None:
        """Nothing to prepare."""

    async def stop(self) -> None:
        """Nothing to release: the session belongs to the server."""

    async def __call__(self, event: BidiOutputEvent) -> None:
        """Send one event to the client."""
        await self.conversation.send(encode_event(event).message)
        self.sent += 1

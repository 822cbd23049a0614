"""WebSocketInput and WebSocketOutput: a Strands agent's I/O streams over an nbstream session.

``BidiAgent.run(inputs=[...], outputs=[...])`` reads its input from input streams and
hands every event to output streams (the SDK's ``InputStream`` and ``OutputStream``).
These two read client envelopes from, and send event envelopes to, a
:class:`Conversation`: the session-level view of one nbstream connection that the
server gives to a conversation handler (``serve_agent`` wires them up), with resume,
history and views behind it. The mapping itself is :mod:`nbstream.strands.wire`.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from strands.bidi.models import AudioCapable
from strands.bidi.types import InputStream, OutputStream
from strands.bidi.types.events import BidiOutputEvent

from nbstream.protocol import (
    CloseCode,
    Message,
    MessageType,
    Session,
    StreamClosed,
    StreamError,
)
from nbstream.strands.activity import Activity
from nbstream.strands.wire import (
    AUDIO_INPUT,
    CONFIG,
    DEFAULT_LIMITS,
    AgentInput,
    InputLimits,
    OutputConfig,
    decode_input,
    encode_event,
    expects_binary,
    invalid,
    missing_frame,
)
from nbstream.wire.envelope import BINARY

Decoded = AgentInput | OutputConfig | StreamError

if TYPE_CHECKING:
    from strands.bidi import BidiAgent


class Conversation(Protocol):
    """One client's session as an agent sees it (``nbstream.server.Conversation``).

    ``receive()`` returns the client's next envelope (a binary frame as
    ``Message("binary", bytes)``) and raises :class:`nbstream.StreamClosed` when the
    session ends; ``send()`` puts an envelope into the session's stream (its history,
    resume and views), or a ``Message("binary", bytes)`` out as a binary frame.
    """

    session: Session

    async def receive(self) -> Message:
        """The client's next envelope."""
        ...

    async def send(self, message: Message) -> None:
        """Send an envelope to the client, through the session's stream."""
        ...


class WebSocketOutput(OutputStream):
    """The agent's output: every event as one envelope of the same ``type``.

    Args:
        conversation: The session to send to.
        binary_audio: Send audio deltas as binary frames (a client can also ask for
            it with a ``bidi_config`` envelope, see :class:`WebSocketInput`).
    """

    def __init__(self, conversation: Conversation, *, binary_audio: bool = False) -> None:
        self.conversation = conversation
        self.config = OutputConfig(binary_audio=binary_audio)
        self.activity = Activity()
        """Whether the agent is answering (see :mod:`nbstream.strands.activity`)."""
        self.sent = 0
        """How many events were sent."""
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self, agent: BidiAgent) -> None:
        """Nothing to prepare."""

    async def stop(self) -> None:
        """Nothing to release: the session belongs to the server."""

    async def __call__(self, event: BidiOutputEvent) -> None:
        """Send one event to the client (its audio in a binary frame if asked)."""
        outgoing = encode_event(event, binary_audio=self.config.binary_audio)
        await self.conversation.send(outgoing.message)
        if outgoing.audio is not None:
            await self.conversation.send(Message(BINARY, outgoing.audio))
        self.sent += 1
        self.activity.saw(outgoing.message.type, outgoing.message.data)
        self._update()

    def heard(self) -> None:
        """A text input went to the agent: its answer is due."""
        self.activity.heard()
        self._update()

    def model_failed(self) -> None:
        """The model failed: what it was answering will not finish."""
        self.activity.failed()
        self._update()

    def _update(self) -> None:
        if self.activity.busy:
            self._idle.clear()
        else:
            self._idle.set()

    async def finished(self) -> None:
        """Return once no answer is under way or due."""
        await self._idle.wait()


class WebSocketInput(InputStream):
    """The agent's input: the client's ``bidi_*_input`` envelopes, decoded.

    A bad envelope is answered with an ``error`` envelope (INVALID_MESSAGE, saying what
    to fix) and the next one is read: the connection goes on. Audio comes as base64
    in ``data.audio``, or in the binary frame right after a ``bidi_audio_input``
    without it; a binary frame on its own is audio in the model's format. When the
    session ends the call raises :class:`nbstream.StreamClosed`, which ends
    ``agent.run()``; when the server shuts down (1001) it first lets the answer under
    way finish.

    Args:
        conversation: The session to read from (and to send errors to).
        limits: Sizes accepted; the audio format is taken from the agent's model at
            :meth:`start` when the model says what it takes.
        output: The output stream of the same session: ``bidi_config`` envelopes
            configure it, and a shutdown waits for it to finish the answer under way.
    """

    def __init__(self, conversation: Conversation, limits: InputLimits = DEFAULT_LIMITS, *,
                 output: WebSocketOutput | None = None) -> None:
        self.conversation = conversation
        self.limits = limits
        self.output = output
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
        ahead: Message | None = None
        while True:
            message = ahead if ahead is not None else await self._receive()
            decoded, ahead = await self._decode(message)
            if isinstance(decoded, StreamError):
                await self._refuse(decoded)
            elif isinstance(decoded, OutputConfig):
                await self._configure(message, decoded)
            else:
                if isinstance(decoded, str) and self.output is not None:
                    self.output.heard()
                return decoded

    async def _decode(self, message: Message) -> tuple[Decoded, Message | None]:
        """What ``message`` means, with its binary frame if it announces one; and the
        message read ahead that is not that frame, if any."""
        if message.type == BINARY and isinstance(message.data, bytes):
            audio = Message(AUDIO_INPUT, {}, message.id)  # audio in the model's format
            return decode_input(audio, payload=message.data, limits=self.limits), None
        if not expects_binary(message):
            return decode_input(message, limits=self.limits), None
        follower = await self._receive()
        if follower.type == BINARY and isinstance(follower.data, bytes):
            return decode_input(message, payload=follower.data, limits=self.limits), None
        return missing_frame(message), follower

    async def _refuse(self, error: StreamError) -> None:
        self.refused += 1
        await self.conversation.send(Message(MessageType.ERROR, error.to_dict()))

    async def _configure(self, message: Message, wanted: OutputConfig) -> None:
        if self.output is None:
            await self._refuse(invalid(message, "this agent's output takes no bidi_config"))
            return
        self.output.config = wanted
        await self.conversation.send(Message(CONFIG, {"binary_audio": wanted.binary_audio,
                                                      "reply_to": message.id}))

    async def _receive(self) -> Message:
        try:
            return await self.conversation.receive()
        except StreamClosed as closed:
            if closed.code == CloseCode.GOING_AWAY and self.output is not None:
                await self.output.finished()  # the server's deadline cancels a long one
            raise

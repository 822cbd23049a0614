"""A client for an agent served with ``serve_agent``: say, send audio, interrupt, read turns.

``nbstream.strands.connect(url)`` (or ``await aconnect(url)``) returns an
:class:`AgentClient` built on nbstream's client, so a dropped connection is resumed
by itself and what was missed arrives once, in order. Reading takes turns: one
``turn``/``response``/``interrupt``/``events()`` at a time per client.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, Unpack

from nbstream import runtime
from nbstream.client import ConnectKwargs
from nbstream.client import aconnect as aconnect_client
from nbstream.client.client import KEEP_EVENTS
from nbstream.events import EventStream, Subscriber
from nbstream.protocol import Message, StreamClosed
from nbstream.strands.received import AgentEvent, AgentTurn, AnswerTracker
from nbstream.wire import EnvelopeProtocol
from nbstream.wire.envelope import BINARY

if TYPE_CHECKING:
    from nbstream.server import Server

T = TypeVar("T")

BYTES_PER_SAMPLE = 2
"""Audio is sent as 16-bit PCM."""


class MessageClient(Protocol):
    """What an :class:`AgentClient` needs of the client under it: ``nbstream.Client``,
    or a load test's ``user.client``."""

    url: str
    timeout: float
    events: EventStream

    @property
    def session_id(self) -> str | None: ...

    async def asend(self, item: Any, data: Any = ...) -> Message: ...

    async def arecv(self, timeout: float | None = None) -> Message: ...

    async def aclose(self) -> None: ...


class AgentEvents(EventStream):
    """A client's flow events (for FlowView and TurnView: ``subscribe``, ``to_frame``);
    called, ``events()``, the agent's events one by one (see :meth:`AgentClient.events`).
    """

    def __init__(self, agent: AgentClient, flow: EventStream) -> None:
        super().__init__()
        self._agent = agent
        self._flow = flow

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Start calling ``subscriber(event)`` for every frame of the client."""
        return self._flow.subscribe(subscriber)

    def to_frame(self) -> Any:
        """The client's last frames as a DataFrame (see ``EventStream.to_frame``)."""
        return self._flow.to_frame()

    def __bool__(self) -> bool:
        return bool(self._flow)

    def __call__(self, timeout: float | None = None) -> AsyncIterator[AgentEvent]:
        """The agent's events as they come, until the connection closes for good.

        Raises:
            TimeoutError: if no event comes within ``timeout`` (default: the client's).
        """
        return self._agent._iterate(timeout)


class AgentClient:
    """A connection to an agent. Create it with :func:`connect` or :func:`aconnect`.

    Send with :meth:`say`, :meth:`send_audio`, :meth:`interrupt`; read one answer with
    :meth:`response` (or :meth:`turn`, which says and reads), or every event with
    ``async for event in agent.events()``. Each method has an ``a``-prefixed twin for
    async code (``await agent.aturn("hi")``).

    Args:
        client: An nbstream client connected to ``serve_agent`` (made by ``connect``;
            a load test's scenario passes ``user.client``).
    """

    def __init__(self, client: MessageClient) -> None:
        self.client = client
        self.events = AgentEvents(self, client.events)
        """The flow events (for views) and, called, the agent's events."""
        self._loop = runtime.home_loop()
        self._ahead: deque[AgentEvent] = deque()
        self.binary_audio = False
        """Whether audio comes (and goes) as binary frames; see :meth:`configure`."""

    @property
    def url(self) -> str:
        """The server's URL."""
        return self.client.url

    @property
    def session_id(self) -> str | None:
        """The session (and so the agent) this client talks to."""
        return self.client.session_id

    # -- sending ------------------------------------------------------------------------

    async def asay(self, text: str) -> Message:
        """Send text to the agent (``bidi_text_input``); returns the envelope sent."""
        if not isinstance(text, str):
            raise TypeError(f"say(text) takes a str, not {type(text).__name__}")
        return await self.client.asend("bidi_text_input", {"text": text})

    async def asend_audio(self, pcm: bytes, sample_rate: int = 16_000, *, channels: int = 1,
                          chunk_ms: int = 100, realtime: bool = False) -> list[Message]:
        """Send 16-bit PCM audio in chunks of ``chunk_ms`` (``bidi_audio_input``).

        The model answers after a pause in the audio (with the scripted model,
        ``audio_gap`` seconds); read the answer with :meth:`response`.

        Args:
            pcm: 16-bit little-endian PCM samples.
            sample_rate: Its rate in Hz; the server refuses a rate the model does not take.
            channels: Interleaved channels.
            chunk_ms: Milliseconds of audio per envelope.
            realtime: Wait a chunk's duration between chunks, like a microphone.

        Returns:
            The envelopes sent.
        """
        if not isinstance(pcm, bytes | bytearray | memoryview):
            raise TypeError(f"send_audio(pcm) takes bytes, not {type(pcm).__name__}")
        frame = BYTES_PER_SAMPLE * channels
        chunk = max(frame, sample_rate * chunk_ms // 1000 * frame)
        data = bytes(pcm)
        sent = []
        for start in range(0, len(data), chunk):
            piece = data[start:start + chunk]
            fields: dict[str, Any] = {"format": "pcm", "sample_rate": sample_rate,
                                      "channels": channels}
            if self.binary_audio:
                sent.append(await self.client.asend("bidi_audio_input", fields))
                await self.client.asend(piece)
            else:
                fields["audio"] = base64.b64encode(piece).decode("ascii")
                sent.append(await self.client.asend("bidi_audio_input", fields))
            if realtime:
                await asyncio.sleep(len(piece) / (sample_rate * frame))
        return sent

    async def aconfigure(self, *, binary_audio: bool, timeout: float | None = None) -> None:
        """Ask for audio as binary frames (True) or base64 in the envelopes (False).

        Binary frames save a third of the bytes but are not replayed after a resume.
        """
        request = await self.client.asend("bidi_config", {"binary_audio": binary_audio})
        deadline = self._deadline(timeout)
        others: list[AgentEvent] = []
        try:
            while True:
                event = await self._next(deadline)
                if event.type == "bidi_config" and event.get("reply_to") == request.id:
                    self.binary_audio = bool(event.get("binary_audio"))
                    return
                error = event.error
                if error is not None and error.details.get("id") == request.id:
                    raise error
                others.append(event)
        finally:
            self._ahead.extendleft(reversed(others))  # for the next reader, in order

    # -- reading -------------------------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.client.timeout if timeout is None else timeout)

    async def _next(self, deadline: float) -> AgentEvent:
        """The next event (with its binary frame) before ``deadline``."""
        if self._ahead:
            return self._ahead.popleft()
        message = await self.client.arecv(self._left(deadline))
        if message.type == BINARY and isinstance(message.data, bytes):
            return AgentEvent("audio_frame", None, message.id, time.monotonic(), message.data)
        event = AgentEvent.of(message, time.monotonic())
        if event.type == "bidi_audio_delta" and event.get("binary") is True:
            try:
                frame = await self.client.arecv(self._left(deadline))
            except TimeoutError:
                self._ahead.append(event)  # its frame may still come: read it next time
                raise
            if frame.type == BINARY and isinstance(frame.data, bytes):
                return AgentEvent.of(message, event.at, frame.data)
            self._ahead.append(AgentEvent.of(frame, time.monotonic()))  # not replayed
        return event

    @staticmethod
    def _left(deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no event from the agent in time")
        return left

    async def anext_event(self, timeout: float | None = None) -> AgentEvent:
        """The agent's next event.

        Raises:
            TimeoutError: if none comes within ``timeout`` (default: the client's).
            StreamClosed: once the connection is closed for good.
        """
        return await self._next(self._deadline(timeout))

    async def _iterate(self, timeout: float | None) -> AsyncIterator[AgentEvent]:
        while True:
            try:
                yield await self.anext_event(timeout)
            except StreamClosed:
                return

    async def _answer(self, tracker: AnswerTracker, turn: AgentTurn,
                      timeout: float | None) -> AgentTurn:
        deadline = self._deadline(timeout)
        while not tracker.done:
            event = await self._next(deadline)
            turn.events.append(event)
            tracker.feed(event)
        if tracker.error is not None:
            raise tracker.error
        return turn

    async def aresponse(self, timeout: float | None = None, *,
                        since: float | None = None) -> AgentTurn:
        """The events of the next answer: up to the stop of its response, or of the
        response that follows its tools. Its timings count from ``since`` (a
        ``time.monotonic()`` reading, e.g. taken before :meth:`send_audio`).

        Raises:
            StreamError: when the agent's model fails (MODEL_ERROR).
            TimeoutError: if the answer does not end within ``timeout``.
            StreamClosed: if the connection closes for good first.
        """
        return await self._answer(AnswerTracker(), AgentTurn(sent_at=since), timeout)

    async def aturn(self, text: str, timeout: float | None = None) -> AgentTurn:
        """Say ``text`` and return the events of the answer (see :meth:`response`);
        the turn's timings count from the send.

        Raises:
            StreamError: when the server refuses the input or the model fails.
            TimeoutError: if the answer does not end within ``timeout``.
        """
        sent_at = time.monotonic()
        request = await self.asay(text)
        return await self._answer(AnswerTracker(request.id), AgentTurn(sent_at=sent_at),
                                  timeout)

    async def ainterrupt(self, text: str, timeout: float | None = None) -> AgentTurn:
        """Say ``text`` while the agent speaks; return the rest of the response it cuts.

        The returned turn ends at that response's stop; its ``barge_in`` is the time
        from the send to the agent's ``bidi_barge_in`` (None when the response ended
        first). Read the answer to ``text`` with :meth:`response`.
        """
        sent_at = time.monotonic()
        request = await self.asay(text)
        turn = AgentTurn(interrupted_at=sent_at)
        return await self._answer(AnswerTracker(request.id, first_stop=True), turn, timeout)

    async def aclose(self) -> None:
        """Close the connection (the server ends the session and its agent)."""
        await self.client.aclose()

    # -- plain (sync) twins -------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return runtime.run_sync(coro, self._loop)

    def say(self, text: str) -> Message:
        """Sync twin of :meth:`asay`."""
        return self._run(self.asay(text))

    def send_audio(self, pcm: bytes, sample_rate: int = 16_000, *, channels: int = 1,
                   chunk_ms: int = 100, realtime: bool = False) -> list[Message]:
        """Sync twin of :meth:`asend_audio`."""
        return self._run(self.asend_audio(pcm, sample_rate, channels=channels,
                                          chunk_ms=chunk_ms, realtime=realtime))

    def configure(self, *, binary_audio: bool, timeout: float | None = None) -> None:
        """Sync twin of :meth:`aconfigure`."""
        self._run(self.aconfigure(binary_audio=binary_audio, timeout=timeout))

    def next_event(self, timeout: float | None = None) -> AgentEvent:
        """Sync twin of :meth:`anext_event`."""
        return self._run(self.anext_event(timeout))

    def response(self, timeout: float | None = None, *,
                 since: float | None = None) -> AgentTurn:
        """Sync twin of :meth:`aresponse`."""
        return self._run(self.aresponse(timeout, since=since))

    def turn(self, text: str, timeout: float | None = None) -> AgentTurn:
        """Sync twin of :meth:`aturn`: ``agent.turn("what is 6*7")``."""
        return self._run(self.aturn(text, timeout))

    def interrupt(self, text: str, timeout: float | None = None) -> AgentTurn:
        """Sync twin of :meth:`ainterrupt`."""
        return self._run(self.ainterrupt(text, timeout))

    def close(self) -> None:
        """Sync twin of :meth:`aclose`."""
        self._run(self.aclose())

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<nbstream.strands.AgentClient {self.url} session={self.session_id}>"


async def aconnect(url: str | Server, *, binary_audio: bool = False,
                   **options: Unpack[ConnectKwargs]) -> AgentClient:
    """Connect to an agent from async code; see :func:`connect`."""
    options.setdefault("protocol", EnvelopeProtocol(binary=True))
    client = await aconnect_client(url, **options)
    client.events.keep(KEEP_EVENTS)  # an agent is explored frame by frame: keep them
    agent = AgentClient(client)
    if binary_audio:
        await agent.aconfigure(binary_audio=True)
    return agent


def connect(url: str | Server, *, binary_audio: bool = False,
            **options: Unpack[ConnectKwargs]) -> AgentClient:
    """Connect to an agent served with ``serve_agent``.

    Args:
        url: The server's ``ws://`` or ``wss://`` URL, or the Server.
        binary_audio: Receive (and send) audio as binary frames instead of base64.
        **options: What :func:`nbstream.connect` takes (``token``, ``ssl``,
            ``timeout``, ``session_id``, ``reconnect``...).

    Returns:
        An :class:`AgentClient`: ``agent.turn("what is 6*7")``, ``agent.close()``.
    """
    return runtime.run_sync(aconnect(url, binary_audio=binary_audio, **options),
                            runtime.home_loop())

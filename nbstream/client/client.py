"""The client: send, receive (batches unpacked), chat and request, resume after drops.

Reading: whoever receives reads the socket directly (no task hop per message).
After IDLE_CHECK seconds without a receive, a background reader takes over so that
heartbeat pings are answered between notebook cells; the next receive stops it
(websockets' ``recv`` is cancellation-safe) and reads directly again. Deadlines are
kept by one :class:`~nbstream.client.watchdog.Watchdog` per client.

Resuming (nbstream protocol): after an abnormal close the client reconnects by
itself (exponential backoff with full jitter), presents its session and position,
and the server replays what was missed; :class:`ClientSessionCore` decides what to
send again and what to drop. If the server cannot replay everything, the client
says so with a RECOVERY_FAILED error message.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from nbstream import running, runtime, wire
from nbstream.client.messages import NO_DATA, chat_message, message_for
from nbstream.client.opening import open_websocket
from nbstream.client.options import ConnectOptions
from nbstream.client.reconnect import Reconnecting
from nbstream.client.sync import SyncTwins
from nbstream.client.turns import SocketTurns
from nbstream.client.watchdog import Watchdog
from nbstream.events import BINARY, TEXT, EventStream
from nbstream.logs import redacting
from nbstream.protocol import (
    Message,
    MessageType,
    StreamClosed,
    StreamError,
    new_id,
)
from nbstream.protocol.client_session import ClientSessionCore, SendDecision
from nbstream.protocol.replies import ReplyStep, Until, request_step
from nbstream.redact import redact_url

logger = redacting(logging.getLogger(__name__))

T = TypeVar("T")

_REPLY_ENDS = frozenset({MessageType.END, MessageType.ERROR, MessageType.PONG})
"""The only types that can end a reply (see nbstream.protocol.replies)."""

KEEP_EVENTS = 10_000
"""Frames a client of another protocol keeps for ``client.events.to_frame()`` (an
nbstream-protocol client keeps none unless asked: ``client.events.keep(10_000)``)."""


class Client(SyncTwins, Reconnecting, SocketTurns):
    """A connection to a WebSocket server. Create it with :func:`nbstream.connect`.

    With the nbstream protocol, ``chat(text)`` sends a chat and returns everything
    streamed back up to ``end``; with any protocol, ``send``/``recv`` give message-level
    control, ``request(value)`` sends and returns the replies, and iterating reads as
    messages come. Receives on one client take turns: open one client per concurrent
    conversation.
    """

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop,
                 options: ConnectOptions) -> None:
        self.url = url
        self._shown_url = redact_url(url)
        """``url`` as reprs and messages show it: a ``?token=`` in it is redacted."""
        self.options = options
        self.timeout = options.timeout
        self.auto_pong = options.auto_pong
        self.protocol = wire.create(options.protocol, type_key=options.type_key)
        """How frames become messages (``protocol=``; see nbstream.wire)."""
        self.events = EventStream(keep=0 if self.protocol.resumable else KEEP_EVENTS)
        """Frames in and out of this client (see nbstream.events); ``to_frame()`` lists
        the last KEEP_EVENTS of them (nbstream protocol: after ``events.keep(n)``)."""
        self.core = ClientSessionCore(send_buffer=options.send_buffer, session_id=(
            options.session_id or (None if self.protocol.resumable else new_id())))
        self.welcome: Message | None = None
        """The server's latest ``welcome`` (session, epoch, recovery), if it sent one."""
        self.reconnects = 0
        """How many times the connection was re-established after an abnormal close."""
        self.backoff = options.backoff if self.protocol.resumable else None
        """Reconnect delays; None switches reconnecting off."""
        self._loop = loop
        self._decode: bool | None = False if self.protocol.text_as_bytes else None
        """How frames are read: as bytes (text too, UTF-8) or as str and bytes."""
        self._ws: ClientConnection | None = None
        self._pending: deque[Message] = deque()
        self._lock = asyncio.Lock()
        self._idle_reader: asyncio.Task[None] | None = None
        self._receivers = 0
        """Receives under way; while any is, the idle reader is not started."""
        self._last_read = 0.0
        """When a receive last read the socket (loop time)."""
        self._watchdog = Watchdog(loop, self._on_idle)
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed: StreamClosed | None = None
        self._closing = False
        self._background: set[asyncio.Task[Any]] = set()
        running.track(self, "client", Client._close_for_all)

    # -- opening and reopening -------------------------------------------------------------

    @property
    def session_id(self) -> str | None:
        """The session this client is in (from the server's welcome), if any; with a
        protocol that has no sessions, an id of this client's own (it names its rows in
        ``client.events``, FlowView and recordings)."""
        return self.core.session_id

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server agreed to, if any."""
        return self._ws.subprotocol if self._ws is not None else None

    def _address(self) -> str:
        options = self.options
        params = {"user": options.user} if options.user else {}
        if options.token and options.token_in == "query":
            params["token"] = options.token
        if self.protocol.resumable:
            params.update(self.core.resume_params())
        if not params:
            return self.url
        parts = urlsplit(self.url)
        query = "&".join(p for p in (parts.query, urlencode(params)) if p)
        return urlunsplit(parts._replace(query=query))

    async def _open(self) -> None:
        """Open a WebSocket, authenticate if asked, read the welcome."""
        opened = await open_websocket(self._address(), self.options, self.protocol)
        if self.events and not self.core.reconnecting:  # a reconnect shows as resumed
            welcome = opened.welcome.data if opened.welcome is not None else {}
            self.events.emit("open", "client", welcome.get("session_id") or self.session_id or "",
                             detail={"subprotocol": opened.ws.subprotocol})
        self._ws = opened.ws
        if opened.welcome is not None:
            self.welcome = opened.welcome
            self.core.welcomed(opened.welcome.data)
            if self.events:  # a frame received like any other (recordings keep it)
                self.events.emit("in", "client", self.session_id or "", direction="s2c",
                                 message=opened.welcome, opcode=TEXT)
        for message in opened.early:
            self._deliver(message, 0)
        if not self.protocol.in_band_heartbeat and self.options.heartbeat_interval:
            self._spawn(self._heartbeat(opened.ws))

    # -- reading ---------------------------------------------------------------------------

    async def _read_frame(self) -> None:
        """Read one frame into the pending messages (answering pings); caller holds the lock."""
        reconnecting = self._reconnecting
        if reconnecting is not None and not reconnecting.done():
            await asyncio.wait([reconnecting])  # it reads the next socket's welcome first
        if self._closed is not None:
            raise self._closed
        assert self._ws is not None
        try:
            frame = await self._ws.recv(decode=self._decode)
        except ConnectionClosed as exc:
            closed = self._closed_error(exc)
            if not self._should_reconnect(closed):
                raise self._finish(closed) from None
            await self._reconnect(closed)
            return
        try:
            messages = self.protocol.decode_replies(frame)
        except StreamError as exc:
            logger.warning("ignoring a frame from %s: %s", self.url, exc)
            self._pending.append(Message(MessageType.ERROR, exc.to_dict()))
            return
        if len(messages) == 1:
            self._deliver(messages[0], len(frame), frame)
        elif messages:
            share = len(frame) // len(messages)  # a batch: each message's share of it
            for message in messages:
                self._deliver(message, share)

    def _deliver(self, message: Message, size: int, frame: str | bytes | None = None) -> None:
        """Take in one message. Never awaits: a cancelled idle reader loses nothing.

        ``size`` is the frame's length (in a batch, each message's share); ``frame`` the
        frame itself when it carried this message alone.
        """
        if not self.core.received(message):
            return  # replayed, and we already have it
        if self.events:
            if self._decode is False and isinstance(frame, bytes):
                frame = frame.decode(errors="replace")  # a text frame read as bytes
            self.events.emit("in", "client", self.session_id or "", direction="s2c",
                             message=message, size=size,
                             opcode=BINARY if isinstance(frame, bytes) else TEXT,
                             payload=frame)
        if message.type == MessageType.PING and self.protocol.in_band_heartbeat:
            if self.auto_pong:
                self._spawn(self._write(self.protocol.pong(message)))
            return
        self._pending.append(message)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- writing ----------------------------------------------------------------------------

    async def _write(self, message: Message) -> bool:
        """Put ``message`` on the wire; False if the connection dropped meanwhile."""
        if self._ws is None:
            raise StreamClosed(None, "not connected")
        encoded = self.protocol.encode(message)
        try:
            await self._ws.send(encoded.data, text=encoded.text)
        except ConnectionClosed:
            return False
        if self.events:
            data = encoded.data
            self.events.emit("out", "client", self.session_id or "", direction="c2s",
                             message=message, size=len(data),
                             opcode=TEXT if encoded.text else BINARY,
                             payload=data.decode(errors="replace") if encoded.text else data)
        return True

    async def _send_message(self, message: Message) -> None:
        if self._closed is not None:
            raise self._closed
        tracked = message.type == MessageType.CHAT and self.protocol.resumable
        decision = self.core.sending(message, tracked=tracked)
        if decision is SendDecision.REFUSE:
            raise StreamClosed(None, f"send buffer full: {self.core.send_buffer} requests "
                                     "wait for the connection to come back")
        if decision is not SendDecision.WRITE:
            return
        if not await self._write(message):
            closed = self._closed_error(None)
            self.core.write_failed(message, tracked=tracked)
            if not self._should_reconnect(closed):
                raise self._finish(closed)
            self._start_reconnect(closed)

    # -- async API ---------------------------------------------------------------------------

    async def asend(self, item: Any, data: Any = NO_DATA) -> Message:
        """Send one message; returns it (its ``id`` is what nbstream replies refer to).

        nbstream protocol: ``send(type, data)``. Other protocols: ``send(value)``, a
        dict or list as JSON text, a str as a text frame, bytes as a binary frame.
        While the client is reconnecting, chats wait in a buffer of ``send_buffer``.

        Raises:
            StreamClosed: if the connection is closed for good, or the buffer is full.
            TypeError: for a value the protocol cannot send.
        """
        message = message_for(self.protocol, item, data)
        await self._on_loop(self._send_message(message))
        return message

    async def arecv(self, timeout: float | None = None) -> Message:
        """The next message from the server (batches come out one message at a time).

        Raises:
            TimeoutError: if nothing arrives within ``timeout`` (default: the client's).
            StreamClosed: once the connection is closed and every message was read.
        """
        return await self._on_loop(self._recv(self.timeout if timeout is None else timeout))

    async def _recv(self, timeout: float) -> Message:
        if self._pending:
            return self._pending.popleft()
        try:
            with self._watchdog.deadline(timeout):
                await self._take_socket()
                try:
                    while not self._pending:
                        await self._read_frame()
                finally:
                    self._give_socket()
        except TimeoutError:
            raise TimeoutError(f"no message from {self._shown_url} within {timeout} s") from None
        return self._pending.popleft()

    async def achat(self, text: str, timeout: float | None = None, **data: Any) -> list[Message]:
        """Send a chat and return everything streamed back, up to and including ``end``.

        Raises:
            TypeError: when ``text`` is not a str (nothing is sent).
            StreamError: when the server answers this chat with an error (e.g.
                RATE_LIMITED: wait ``e.details["retry_after"]`` seconds and retry),
                or RECOVERY_FAILED when a reconnect lost part of the reply.
            TimeoutError: if ``end`` does not arrive within ``timeout`` seconds.
            StreamClosed: if the connection closes for good first.
        """
        request = chat_message(self.protocol, text, data)
        return await self._on_loop(self._request(
            request, None, self.timeout if timeout is None else timeout))

    async def arequest(self, value: Any, until: Until | None = None,
                       timeout: float | None = None) -> list[Message]:
        """Send ``value`` and return the replies up to and including the first for which
        ``until(message)`` is true.

        By default a request ends at its first reply (nbstream protocol: at the ``end``
        or error that answers it).

        Raises:
            StreamError: (nbstream protocol) when the server answers with an error.
            TimeoutError: if the last reply does not arrive within ``timeout`` seconds.
            StreamClosed: if the connection closes for good first.
        """
        request = self.protocol.to_message(value)
        return await self._on_loop(self._request(
            request, until, self.timeout if timeout is None else timeout))

    async def _request(self, request: Message, until: Until | None,
                       timeout: float) -> list[Message]:
        await self._send_message(request)
        replies: list[Message] = []
        pending = self._pending
        ends_replies = self.protocol.ends_replies
        by_reply = until is None and ends_replies  # only an end or an error can end it
        try:
            with self._watchdog.deadline(timeout):
                await self._take_socket()  # once per request rather than once per message
                try:
                    while True:
                        while not pending:
                            await self._read_frame()
                        message = pending.popleft()
                        replies.append(message)
                        if by_reply and message.type not in _REPLY_ENDS:
                            continue  # streamed content: the reply goes on
                        step = request_step(message, request.id, until, ends_replies)
                        if step is ReplyStep.END:
                            return replies
                        if step is ReplyStep.FAILED:
                            error = message.error
                            assert error is not None
                            raise error
                finally:
                    self._give_socket()
        except TimeoutError:
            waited_for = ("no end for chat" if request.type == MessageType.CHAT
                          else "no reply to request")
            raise TimeoutError(f"{waited_for} {request.id} within {timeout} s") from None

    async def aclose(self) -> None:
        """Close the connection (code 1000; the server ends the session). Safe twice."""
        await self._on_loop(self._close())

    async def _close(self) -> None:
        self._closing = True
        await self._stop_idle_reader()
        self._watchdog.stop()
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            await asyncio.wait([self._reconnecting])
            self._reconnecting = None
        for task in list(self._background):
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
            if self._closed is None:
                self._finish(self._closed_error(None))

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.arecv()
            except StreamClosed:
                return

    async def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        return await runtime.run_on(self._loop, coro)

    @property
    def closed(self) -> StreamClosed | None:
        """Why the connection closed for good, or None while it is open or reconnecting."""
        return self._closed

    @property
    def recovered(self) -> bool | None:
        """Whether the last reconnect replayed everything missed (None: no reconnect yet)."""
        if self.welcome is None or self.reconnects == 0:
            return None
        return bool(self.welcome.data.get("recovered"))

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"<nbstream.Client {self._shown_url} protocol={self.protocol.name} "
                f"session={self.session_id} {state}>")

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
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from nbstream import running, runtime, wire
from nbstream.client.opening import open_websocket
from nbstream.client.options import ConnectOptions
from nbstream.client.watchdog import Watchdog
from nbstream.events import BINARY, PING, PONG, TEXT, EventStream
from nbstream.logs import redacting
from nbstream.protocol import (
    CloseCode,
    Message,
    MessageType,
    StreamClosed,
    StreamError,
)
from nbstream.protocol.client_session import FINAL_ERRORS, ClientSessionCore, SendDecision
from nbstream.protocol.replies import ReplyStep, reply_step
from nbstream.redact import redact_url

logger = redacting(logging.getLogger(__name__))

T = TypeVar("T")

IDLE_CHECK = 0.2
"""Seconds without a receive after which a background reader answers pings."""

MAX_PENDING = 10_000
"""Messages held for a client that does not read; beyond it reading pauses (backpressure)."""

KEEP_EVENTS = 10_000
"""Frames a client keeps for ``client.events.to_frame()``."""

_NO_DATA: Any = object()

Until = Callable[[Message], bool]
"""Which reply ends a :meth:`Client.request`."""


class Client:
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
        self.events = EventStream(keep=KEEP_EVENTS)
        """Frames in and out of this client (see nbstream.events); ``to_frame()`` lists
        the last KEEP_EVENTS of them."""
        self.core = ClientSessionCore(send_buffer=options.send_buffer,
                                      session_id=options.session_id)
        self.welcome: Message | None = None
        """The server's latest ``welcome`` (session, epoch, recovery), if it sent one."""
        self.reconnects = 0
        """How many times the connection was re-established after an abnormal close."""
        self.backoff = options.backoff if self.protocol.resumable else None
        """Reconnect delays; None switches reconnecting off."""
        self._loop = loop
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
        """The session this client is in (from the server's welcome), if any."""
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
        self._ws = opened.ws
        if opened.welcome is not None:
            self.welcome = opened.welcome
            self.core.welcomed(opened.welcome.data)
        for message in opened.early:
            self._deliver(message, 0)
        if not self.protocol.in_band_heartbeat and self.options.heartbeat_interval:
            self._spawn(self._heartbeat(opened.ws))

    def _closed_error(self, exc: ConnectionClosed | None) -> StreamClosed:
        ws = self._ws
        code = ws.close_code if ws is not None else None
        reason = ws.close_reason if ws is not None else ""
        if exc is not None and exc.rcvd is not None:
            code, reason = exc.rcvd.code, exc.rcvd.reason
            self.core.closed_by_server(code, reason)
        return StreamClosed(code, reason or "", self.core.last_error)

    def _should_reconnect(self, closed: StreamClosed) -> bool:
        return not self._closing and self.core.should_reconnect(
            closed.code, can_reconnect=self.backoff is not None)

    async def _reconnect(self, closed: StreamClosed) -> None:
        """Reconnect (once for all callers) or raise the final StreamClosed."""
        reconnecting = self._start_reconnect(closed)
        try:
            await asyncio.shield(reconnecting)
        finally:
            if self._reconnecting is not None and self._reconnecting.done():
                self._reconnecting = None
        if self._closed is not None:
            raise self._closed

    def _start_reconnect(self, closed: StreamClosed) -> asyncio.Task[None]:
        """The reconnect under way, started now if there is none (requests sent from
        now on wait in the buffer)."""
        if self._reconnecting is None or self._reconnecting.done():
            self.core.reconnecting = True
            self._reconnecting = asyncio.create_task(self._reconnect_loop(closed))
        return self._reconnecting

    async def _reconnect_loop(self, closed: StreamClosed) -> None:
        assert self.backoff is not None
        core = self.core
        logger.info("%s: connection lost (%s); reconnecting", self.url, closed)
        if self.events:
            self.events.emit("close", "client", self.session_id or "",
                             detail={"code": closed.code, "reason": closed.reason})
        abnormal = closed.code != CloseCode.GOING_AWAY
        last = closed
        for attempt in range(self.backoff.attempts):
            await asyncio.sleep(self.backoff.delay(attempt))
            core.resuming()
            try:
                await self._open()
            except (StreamClosed, OSError, TimeoutError) as exc:
                last = exc if isinstance(exc, StreamClosed) else StreamClosed(None, str(exc))
                if last.code is not None:
                    core.closed_by_server(last.code, last.reason)
                if last.error is not None and last.error.code in FINAL_ERRORS:
                    break
                continue
            self.reconnects += 1
            await self._resumed(abnormal)
            return
        code, reason = core.last_close or (last.code, "")
        gave_up = f"gave up reconnecting: {last.reason or 'no answer'}"
        self._closed = StreamClosed(code, f"{reason} ({gave_up})" if reason else gave_up,
                                    last.error)

    async def _resumed(self, abnormal: bool) -> None:
        """After a reconnect: report the recovery, send again what has no reply yet."""
        assert self.welcome is not None
        outcome = self.core.resumed(self.welcome.data, abnormal=abnormal)
        if self.events:
            self.events.emit("open", "client", self.session_id or "",
                             detail={"resumed": True, "recovered": outcome.recovered})
        if outcome.error is not None:
            self._pending.append(Message(MessageType.ERROR, outcome.error.to_dict()))
            logger.warning("%s: %s", self.url, outcome.error)
        elif outcome.recovered:
            logger.info("%s: resumed, %s message(s) replayed", self.url,
                        self.welcome.data.get("replayed"))
        for message in outcome.resend:
            await self._write(message)

    async def _heartbeat(self, ws: ClientConnection) -> None:
        """WebSocket pings for protocols without in-band ones; a silent server: 1011."""
        interval = self.options.heartbeat_interval
        assert interval is not None
        try:
            while True:
                await asyncio.sleep(interval)
                started = self._loop.time()
                if self.events:
                    self.events.emit("out", "client", self.session_id or "",
                                     direction="c2s", opcode=PING)
                pong = await ws.ping()
                try:
                    rtt = await asyncio.wait_for(pong, self.options.heartbeat_timeout)
                except TimeoutError:
                    logger.info("%s: no pong within %g s; closing", self.url,
                                self.options.heartbeat_timeout)
                    await ws.close(CloseCode.INTERNAL_ERROR, "heartbeat timeout")
                    return
                if self.events:
                    self.events.emit("in", "client", self.session_id or "",
                                     direction="s2c", opcode=PONG,
                                     detail={"rtt": rtt or self._loop.time() - started})
                    self.events.emit("heartbeat", "client", self.session_id or "",
                                     detail={"rtt": rtt})
        except ConnectionClosed:
            return

    # -- reading ---------------------------------------------------------------------------

    async def _read_frame(self) -> None:
        """Read one frame into the pending messages (answering pings); caller holds the lock."""
        if self._closed is not None:
            raise self._closed
        assert self._ws is not None
        try:
            frame = await self._ws.recv(decode=False if self.protocol.resumable else None)
        except ConnectionClosed as exc:
            closed = self._closed_error(exc)
            if not self._should_reconnect(closed):
                self._closed = closed
                raise closed from None
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

    async def _read_while_idle(self) -> None:
        try:
            async with self._lock:
                while len(self._pending) < MAX_PENDING:
                    await self._read_frame()
        except (StreamClosed, asyncio.CancelledError):
            pass

    def _on_idle(self, now: float) -> float | None:
        """The watchdog's idle check: start the idle reader after a pause of IDLE_CHECK."""
        if self._closed is not None or self._closing:
            return None
        idle_for = now - self._last_read
        if (self._idle_reader is None and not self._receivers and not self._lock.locked()
                and idle_for >= IDLE_CHECK):
            self._idle_reader = asyncio.create_task(self._read_while_idle())
            idle_for = 0.0
        return now + max(0.01, IDLE_CHECK - idle_for)

    async def _stop_idle_reader(self) -> None:
        reader, self._idle_reader = self._idle_reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.wait([reader])

    def _deliver(self, message: Message, size: int, frame: str | bytes | None = None) -> None:
        """Take in one message. Never awaits: a cancelled idle reader loses nothing.

        ``size`` is the frame's length (in a batch, each message's share); ``frame`` the
        frame itself when it carried this message alone.
        """
        if not self.core.received(message):
            return  # replayed, and we already have it
        if self.events:
            if self.protocol.resumable and isinstance(frame, bytes):
                frame = frame.decode(errors="replace")  # nbstream reads text frames as bytes
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
                self._closed = closed
                raise closed
            self._start_reconnect(closed)

    # -- async API ---------------------------------------------------------------------------

    def _message(self, item: Any, data: Any) -> Message:
        """The message for ``send(type, data)`` (nbstream) or ``send(value)`` (any)."""
        envelope = isinstance(self.protocol, wire.EnvelopeProtocol)
        if data is not _NO_DATA or (envelope and isinstance(item, str)):
            if not envelope:
                raise TypeError(f"send(type, data) is the nbstream protocol's form; with "
                                f"protocol={self.protocol.name!r} send one value: "
                                "client.send({...}), client.send('text') or bytes")
            return Message(str(item), None if data is _NO_DATA else data)
        return self.protocol.to_message(item)

    async def asend(self, item: Any, data: Any = _NO_DATA) -> Message:
        """Send one message; returns it (its ``id`` is what nbstream replies refer to).

        nbstream protocol: ``send(type, data)``. Other protocols: ``send(value)``, a
        dict or list as JSON text, a str as a text frame, bytes as a binary frame.
        While the client is reconnecting, chats wait in a buffer of ``send_buffer``.

        Raises:
            StreamClosed: if the connection is closed for good, or the buffer is full.
            TypeError: for a value the protocol cannot send.
        """
        message = self._message(item, data)
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

    async def _take_socket(self) -> None:
        """Become the one receive reading the socket (the idle reader steps aside)."""
        self._receivers += 1
        try:
            if self._idle_reader is not None:
                await self._stop_idle_reader()
            await self._lock.acquire()
        except BaseException:
            self._receivers -= 1
            raise

    def _give_socket(self) -> None:
        self._lock.release()
        self._receivers -= 1
        self._last_read = self._loop.time()

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
        if not isinstance(text, str):
            raise TypeError(f"chat(text) takes a str, got {type(text).__name__}: "
                            f"chat(str(value)) sends its text")
        if not self.protocol.ends_replies:
            raise TypeError(f"chat() is the nbstream protocol's; with protocol="
                            f"{self.protocol.name!r} use request(value)")
        request = Message(MessageType.CHAT, {**data, "text": text})
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
        by_reply = until is None and self.protocol.ends_replies
        try:
            with self._watchdog.deadline(timeout):
                await self._take_socket()  # once per request rather than once per message
                try:
                    while True:
                        while not pending:
                            await self._read_frame()
                        message = pending.popleft()
                        replies.append(message)
                        if not by_reply:
                            if until is None or until(message):
                                return replies
                            continue
                        step = reply_step(message, request.id)
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
                self._closed = self._closed_error(None)

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

    # -- sync API --------------------------------------------------------------------------------

    def send(self, item: Any, data: Any = _NO_DATA) -> Message:
        """Sync twin of :meth:`asend`."""
        return runtime.run_sync(self.asend(item, data), self._loop)

    def recv(self, timeout: float | None = None) -> Message:
        """Sync twin of :meth:`arecv`."""
        return runtime.run_sync(self.arecv(timeout), self._loop)

    def chat(self, text: str, timeout: float | None = None, **data: Any) -> list[Message]:
        """Sync twin of :meth:`achat`: ``client.chat("what is 6*7?")``."""
        return runtime.run_sync(self.achat(text, timeout, **data), self._loop)

    def request(self, value: Any, until: Until | None = None,
                timeout: float | None = None) -> list[Message]:
        """Sync twin of :meth:`arequest`."""
        return runtime.run_sync(self.arequest(value, until, timeout), self._loop)

    def close(self) -> None:
        """Sync twin of :meth:`aclose`."""
        if not self._loop.is_closed():
            runtime.run_sync(self.aclose(), self._loop)

    def _close_for_all(self) -> str | None:
        if self._closed is not None or self._loop.is_closed():
            return None
        self.close()
        return f"client of {self._shown_url} (session {self.session_id}): closed"

    def __iter__(self) -> Iterator[Message]:
        while True:
            try:
                yield self.recv()
            except StreamClosed:
                return

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

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"<nbstream.Client {self._shown_url} protocol={self.protocol.name} "
                f"session={self.session_id} {state}>")

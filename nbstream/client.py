"""The nbstream client: send envelopes, receive (batches unpacked), chat, auto-pong.

``client = nbstream.connect(url)`` works from a notebook cell and from a script;
``await nbstream.aconnect(url)`` is the async twin. Every receive has a timeout.
A reader task answers the server's heartbeat pings even while nobody reads, so an
idle client in a notebook stays connected between cells.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from nbstream import runtime
from nbstream.events import EventStream
from nbstream.protocol import (
    SUBPROTOCOL,
    ErrorCode,
    Message,
    MessageType,
    StreamError,
    encode,
    parse_server_frame,
)

if TYPE_CHECKING:
    from nbstream.server import Server

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
"""Seconds any receive waits unless told otherwise."""

IDLE_CHECK = 0.2
"""Seconds without a receive after which a background reader answers pings."""

MAX_PENDING = 10_000
"""Messages held for a client that does not read; beyond it reading pauses (backpressure)."""


class StreamClosed(ConnectionError):
    """The connection is closed; says by whom, with which code, and the last error.

    ``code`` and ``reason`` are the WebSocket close code and reason; ``error`` is the
    structured error the server sent just before closing, if any (for example
    TOO_MANY_CONNECTIONS with close code 1013).
    """

    def __init__(self, code: int | None, reason: str, error: StreamError | None = None) -> None:
        self.code = code
        self.reason = reason
        self.error = error
        text = f"connection closed with code {code}"
        if reason:
            text += f" ({reason})"
        if error is not None:
            text += f" after {error}"
        super().__init__(text)


class Client:
    """A connection to an nbstream server. Create it with :func:`nbstream.connect`.

    ``chat(text)`` sends a chat and returns everything streamed back up to ``end``;
    ``send``/``recv`` give message-level control; iterate to read as messages come.
    """

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop, timeout: float,
                 auto_pong: bool) -> None:
        self.url = url
        self.timeout = timeout
        self.auto_pong = auto_pong
        self.events = EventStream()
        """Messages in and out of this client (see nbstream.events)."""
        self.session_id: str | None = None
        self.welcome: Message | None = None
        """The server's ``welcome`` (session id, heartbeat settings), if it sent one."""
        self._loop = loop
        self._ws: ClientConnection | None = None
        self._pending: deque[Message] = deque()
        self._lock = asyncio.Lock()
        self._idle_reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed: StreamClosed | None = None
        self._last_error: StreamError | None = None

    # -- opening ------------------------------------------------------------------------

    async def _open(self, open_timeout: float, max_message_bytes: int | None,
                    headers: dict[str, str]) -> None:
        try:
            self._ws = await ws_connect(
                self.url, subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                open_timeout=open_timeout, max_size=max_message_bytes,
                additional_headers=headers, compression=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            code = ErrorCode.UNAUTHORIZED if status in (401, 403) else ErrorCode.INVALID_MESSAGE
            raise StreamClosed(None, f"handshake refused with HTTP {status}",
                               StreamError(code, f"HTTP {status}",
                                           details={"status": status})) from None
        if self._ws.subprotocol == SUBPROTOCOL:
            try:
                first = await asyncio.wait_for(self._ws.recv(), open_timeout)
            except ConnectionClosed as exc:
                raise self._closed_error(exc) from None
            for message in parse_server_frame(first):
                if message.type == MessageType.WELCOME:
                    self.welcome = message
                    self.session_id = message.data.get("session_id")
                else:
                    await self._deliver(message)
            if self.welcome is None:
                await self._wait_for_close()
        self._watchdog = self._loop.call_later(IDLE_CHECK, self._check_idle)

    async def _wait_for_close(self) -> None:
        """The server sent an error instead of a welcome: collect its close and raise."""
        assert self._ws is not None
        try:
            await asyncio.wait_for(self._ws.wait_closed(), 5.0)
        except TimeoutError:
            await self._ws.close()
        raise self._closed_error(None)

    def _closed_error(self, exc: ConnectionClosed | None) -> StreamClosed:
        ws = self._ws
        code = ws.close_code if ws is not None else None
        reason = ws.close_reason if ws is not None else ""
        if exc is not None and exc.rcvd is not None:
            code, reason = exc.rcvd.code, exc.rcvd.reason
        return StreamClosed(code, reason or "", self._last_error)

    # -- reading ----------------------------------------------------------------------------
    #
    # Whoever receives reads the socket directly (no extra task hop per message). While
    # nobody receives for IDLE_CHECK seconds, a background reader takes over so that the
    # server's heartbeat pings are answered between notebook cells; the next receive
    # cancels it (websockets' recv is cancellation-safe) and reads directly again.

    async def _read_frame(self) -> None:
        """Read one frame into the pending messages (answering pings); caller holds the lock."""
        assert self._ws is not None
        try:
            frame = await self._ws.recv(decode=False)
        except ConnectionClosed as exc:
            self._closed = self._closed_error(exc)
            raise self._closed from None
        try:
            messages = parse_server_frame(frame)
        except StreamError as exc:
            logger.warning("ignoring a frame from %s: %s", self.url, exc)
            return
        for message in messages:
            await self._deliver(message)

    async def _read_while_idle(self) -> None:
        try:
            async with self._lock:
                while len(self._pending) < MAX_PENDING:
                    await self._read_frame()
        except (StreamClosed, asyncio.CancelledError):
            pass

    def _check_idle(self) -> None:
        if self._closed is not None or self._ws is None:
            return
        if self._idle_reader is None and not self._lock.locked():
            self._idle_reader = asyncio.create_task(self._read_while_idle())
        self._watchdog = self._loop.call_later(IDLE_CHECK, self._check_idle)

    async def _stop_idle_reader(self) -> None:
        reader, self._idle_reader = self._idle_reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.wait([reader])

    async def _deliver(self, message: Message) -> None:
        if self.events:
            self.events.emit("in", "client", self.session_id or "", direction="s2c",
                             message=message)
        if message.type == MessageType.PING and self.auto_pong:
            await self._send_message(Message(MessageType.PONG, {"ping_id": message.id}))
            return
        if message.type == MessageType.ERROR:
            self._last_error = message.error
        self._pending.append(message)

    async def _send_message(self, message: Message) -> None:
        if self._ws is None:
            raise StreamClosed(None, "not connected")
        if self._closed is not None:
            raise self._closed
        encoded = encode(message)
        try:
            await self._ws.send(encoded, text=True)
        except ConnectionClosed as exc:
            raise self._closed_error(exc) from None
        if self.events:
            self.events.emit("out", "client", self.session_id or "", direction="c2s",
                             message=message, size=len(encoded))

    # -- async API ---------------------------------------------------------------------------

    async def asend(self, type: str | MessageType, data: Any = None) -> Message:
        """Send one envelope; returns it (its ``id`` is what replies refer to).

        Raises:
            StreamClosed: if the connection is closed.
        """
        message = Message(str(type), data)
        await self._on_loop(self._send_message(message))
        return message

    async def arecv(self, timeout: float | None = None) -> Message:
        """The next message from the server (batches come out one message at a time).

        Args:
            timeout: Seconds to wait; defaults to the client's ``timeout``.

        Raises:
            TimeoutError: if nothing arrives in time.
            StreamClosed: once the connection is closed and every message was read.
        """
        return await self._on_loop(self._recv(self.timeout if timeout is None else timeout))

    async def _recv(self, timeout: float) -> Message:
        if self._pending:
            return self._pending.popleft()
        try:
            async with asyncio.timeout(timeout):
                return await self._next()
        except TimeoutError:
            raise TimeoutError(f"no message from {self.url} within {timeout} s") from None

    async def _next(self) -> Message:
        """The next message, reading the socket if none is pending; no timeout of its own."""
        if not self._pending:
            if self._idle_reader is not None:
                await self._stop_idle_reader()
            async with self._lock:
                while not self._pending:
                    await self._read_frame()
        return self._pending.popleft()

    async def achat(self, text: str, timeout: float | None = None, **data: Any) -> list[Message]:
        """Send a chat and return everything streamed back, up to and including ``end``.

        Raises:
            StreamError: when the server answers this chat with an error (e.g.
                RATE_LIMITED: wait ``e.details["retry_after"]`` seconds and retry).
            TimeoutError: if ``end`` does not arrive within ``timeout`` seconds.
            StreamClosed: if the connection closes first.
        """
        return await self._on_loop(
            self._chat(text, self.timeout if timeout is None else timeout, data))

    async def _chat(self, text: str, timeout: float, data: dict[str, Any]) -> list[Message]:
        sent = Message(MessageType.CHAT, {**data, "text": text})
        await self._send_message(sent)
        replies: list[Message] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = await self._next()
                    replies.append(message)
                    if message.type == MessageType.END:
                        return replies
                    if message.type == MessageType.ERROR:
                        error = message.error
                        assert error is not None
                        if error.details.get("reply_to") == sent.id or not error.recoverable:
                            raise error
        except TimeoutError:
            raise TimeoutError(f"no end for chat {sent.id} within {timeout} s") from None

    async def aclose(self) -> None:
        """Close the connection (code 1000). Safe to call twice."""
        await self._on_loop(self._close())

    async def _close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        await self._stop_idle_reader()
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
        if runtime.running_loop() is self._loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    # -- sync API --------------------------------------------------------------------------------

    def send(self, type: str | MessageType, data: Any = None) -> Message:
        """Sync twin of :meth:`asend`."""
        return runtime.run_sync(self.asend(type, data), self._loop)

    def recv(self, timeout: float | None = None) -> Message:
        """Sync twin of :meth:`arecv`."""
        return runtime.run_sync(self.arecv(timeout), self._loop)

    def chat(self, text: str, timeout: float | None = None, **data: Any) -> list[Message]:
        """Sync twin of :meth:`achat`: ``client.chat("what is 6*7?")``."""
        return runtime.run_sync(self.achat(text, timeout, **data), self._loop)

    def close(self) -> None:
        """Sync twin of :meth:`aclose`."""
        if not self._loop.is_closed():
            runtime.run_sync(self.aclose(), self._loop)

    def __iter__(self) -> Iterator[Message]:
        while True:
            try:
                yield self.recv()
            except StreamClosed:
                return

    @property
    def closed(self) -> StreamClosed | None:
        """Why the connection closed, or None while it is open."""
        if self._closed is None and self._ws is not None and self._ws.close_code is not None:
            self._closed = self._closed_error(None)
        return self._closed

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
        return f"<nbstream.Client {self.url} session={self.session_id} {state}>"


def _with_query(url: str, params: dict[str, str]) -> str:
    if not params:
        return url
    parts = urlsplit(url)
    query = "&".join(p for p in (parts.query, urlencode(params)) if p)
    return urlunsplit(parts._replace(query=query))


async def aconnect(url: str | Server, *, session_id: str | None = None, user: str | None = None,
                   token: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                   open_timeout: float = 10.0, max_message_bytes: int | None = 16 * 2**20,
                   auto_pong: bool = True) -> Client:
    """Connect to an nbstream server from async code; see :func:`connect`."""
    target = url if isinstance(url, str) else url.url
    params = {k: v for k, v in (("session_id", session_id), ("user", user)) if v}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    loop = runtime.home_loop()
    client = Client(_with_query(target, params), loop, timeout, auto_pong)
    opening = client._open(open_timeout, max_message_bytes, headers)
    if runtime.running_loop() is loop:
        await opening
    else:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(opening, loop))
    return client


def connect(url: str | Server, *, session_id: str | None = None, user: str | None = None,
            token: str | None = None, timeout: float = DEFAULT_TIMEOUT,
            open_timeout: float = 10.0, max_message_bytes: int | None = 16 * 2**20,
            auto_pong: bool = True) -> Client:
    """Connect to an nbstream server (or any server speaking the envelope).

    Args:
        url: ``ws://`` or ``wss://`` URL, or a :class:`Server`.
        session_id: Resume or name a session; the server makes one up otherwise.
        user: Who you are, for per-user limits (sent as the ``user`` query parameter).
        token: Credentials, sent as ``Authorization: Bearer <token>``.
        timeout: Default seconds for every receive (``recv``, ``chat``, iteration).
        open_timeout: Seconds for the opening handshake.
        max_message_bytes: Largest frame accepted from the server.
        auto_pong: Answer the server's heartbeat pings (leave on).

    Raises:
        StreamClosed: if the server refuses the connection (e.g. TOO_MANY_CONNECTIONS,
            close code 1013), naming the error and the close code.
    """
    target = url if isinstance(url, str) else url.url
    loop = runtime.home_loop()
    return runtime.run_sync(
        aconnect(target, session_id=session_id, user=user, token=token, timeout=timeout,
                 open_timeout=open_timeout, max_message_bytes=max_message_bytes,
                 auto_pong=auto_pong),
        loop,
    )

"""The nbstream client: send envelopes, receive (batches unpacked), chat, resume.

``client = nbstream.connect(url)`` works from a notebook cell and from a script;
``await nbstream.aconnect(url)`` is the async twin. Every receive has a timeout.

Reading: whoever receives reads the socket directly (no task hop per message).
After IDLE_CHECK seconds without a receive, a background reader takes over so that
heartbeat pings are answered between notebook cells; the next receive cancels it
(websockets' ``recv`` is cancellation-safe) and reads directly again.

Timeouts: a receive registers its deadline with the same watchdog instead of arming
a timer of its own (a timer per chat cost 6-9% of a request/response round trip).
The watchdog wakes at the earliest deadline, so timeouts stay exact.

Resuming: after an abnormal close the client reconnects by itself (exponential
backoff with full jitter), presents its session and the id of the last message it
saw, and the server replays what was missed. Chats without a reply yet are sent
again with the same ids (the server drops the duplicates); replayed messages the
client already has are dropped by position. If the server cannot replay
everything, the client says so with a RECOVERY_FAILED error message.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from nbstream import running, runtime
from nbstream.events import EventStream
from nbstream.logs import websockets_logger
from nbstream.protocol import (
    SUBPROTOCOL,
    Backoff,
    CloseCode,
    ErrorCode,
    Message,
    MessageType,
    Position,
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

_RESUMABLE_CLOSES = frozenset({
    CloseCode.GOING_AWAY, 1006, CloseCode.INTERNAL_ERROR, 1012, CloseCode.TRY_AGAIN_LATER,
    1014, CloseCode.SLOW_CONSUMER,
})
"""Close codes after which the client reconnects (others are final)."""

_FINAL_ERRORS = frozenset({ErrorCode.UNAUTHORIZED, ErrorCode.INTERNAL_ERROR,
                           ErrorCode.MESSAGE_TOO_LARGE})
"""Errors after which reconnecting would not help."""


class StreamClosed(ConnectionError):
    """The connection is closed; says with which code and reason, and the last error.

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
    Receives on one client take turns: a chat reads its whole reply before another
    task's ``recv`` gets the next message, so open one client per concurrent
    conversation.
    """

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop, *, timeout: float,
                 auto_pong: bool, session_id: str | None, params: dict[str, str],
                 headers: dict[str, str], auth_message: str | None, open_timeout: float,
                 max_message_bytes: int | None, ssl: ssl_module.SSLContext | None,
                 backoff: Backoff | None, send_buffer: int) -> None:
        self.url = url
        self.timeout = timeout
        self.auto_pong = auto_pong
        self.events = EventStream()
        """Messages in and out of this client (see nbstream.events)."""
        self.session_id = session_id
        self.welcome: Message | None = None
        """The server's latest ``welcome`` (session, epoch, recovery), if it sent one."""
        self.reconnects = 0
        """How many times the connection was re-established after an abnormal close."""
        self.backoff = backoff
        """Reconnect delays; None switches reconnecting off."""
        self.send_buffer = send_buffer
        self._loop = loop
        self._params = params
        self._headers = headers
        self._auth_message = auth_message
        self._open_timeout = open_timeout
        self._max_message_bytes = max_message_bytes
        self._ssl = ssl
        self._ws: ClientConnection | None = None
        self._pending: deque[Message] = deque()
        self._lock = asyncio.Lock()
        self._idle_reader: asyncio.Task[None] | None = None
        self._receivers = 0
        """Receives under way; while any is, the idle reader is not started."""
        self._watchdog: asyncio.TimerHandle | None = None
        self._watch_at = float("inf")
        """When the watchdog runs next (loop time); inf while it is not armed."""
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        """Tasks waiting in a receive, and when their time is up (loop time)."""
        self._expired: set[asyncio.Task[Any]] = set()
        self._last_read = 0.0
        """When a receive last read the socket (loop time); the idle reader waits for a
        pause of IDLE_CHECK seconds after it, so busy clients never pay for it."""
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed: StreamClosed | None = None
        self._closing = False
        self._last_error: StreamError | None = None
        self._last_id: str | None = None
        """Id of the last stream message received ("<epoch>:<offset>")."""
        self._replayed_up_to: Position | None = None
        """After a resume: the position the client already had; replays up to it are
        dropped. None once the replay has caught up."""
        self._pongs: set[asyncio.Task[bool]] = set()
        self._unacked: dict[str, Message] = {}
        """Chats written to a connection and not answered yet (sent again on resume)."""
        self._buffered: dict[str, Message] = {}
        """Chats sent while reconnecting, never written yet."""
        running.track(self, "client", Client._close_for_all)

    # -- opening and reopening -------------------------------------------------------------

    def _address(self) -> str:
        params = dict(self._params)
        if self.session_id:
            params["session_id"] = self.session_id
        if self._last_id is not None:
            params["last_id"] = self._last_id
        if not params:
            return self.url
        parts = urlsplit(self.url)
        query = "&".join(p for p in (parts.query, urlencode(params)) if p)
        return urlunsplit(parts._replace(query=query))

    async def _open(self) -> None:
        """Open a WebSocket, authenticate if asked, read the welcome."""
        try:
            tls: dict[str, Any] = {"ssl": self._ssl} if self._ssl is not None else {}
            ws = await ws_connect(
                self._address(), subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                open_timeout=self._open_timeout, max_size=self._max_message_bytes,
                additional_headers=self._headers, compression=None,
                logger=websockets_logger("nbstream.websockets.client"), **tls,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            code = ErrorCode.UNAUTHORIZED if status in (401, 403) else ErrorCode.INVALID_MESSAGE
            raise StreamClosed(None, f"handshake refused with HTTP {status}",
                               StreamError(code, f"HTTP {status}",
                                           details={"status": status})) from None
        self._ws = ws
        if self._auth_message is not None:
            await ws.send(encode(Message(MessageType.AUTH, {"token": self._auth_message})),
                          text=True)
        if ws.subprotocol != SUBPROTOCOL:
            return
        try:
            first = await asyncio.wait_for(ws.recv(decode=False), self._open_timeout)
        except ConnectionClosed as exc:
            raise self._closed_error(exc) from None
        welcome = None
        for message in parse_server_frame(first):
            if message.type == MessageType.WELCOME:
                welcome = message
            else:
                self._deliver(message, len(first))
        if welcome is None:
            try:
                await asyncio.wait_for(ws.wait_closed(), self._open_timeout)
            except TimeoutError:
                await ws.close()
            raise self._closed_error(None)
        self.welcome = welcome
        self.session_id = welcome.data.get("session_id")

    def _closed_error(self, exc: ConnectionClosed | None) -> StreamClosed:
        ws = self._ws
        code = ws.close_code if ws is not None else None
        reason = ws.close_reason if ws is not None else ""
        if exc is not None and exc.rcvd is not None:
            code, reason = exc.rcvd.code, exc.rcvd.reason
        return StreamClosed(code, reason or "", self._last_error)

    def _should_reconnect(self, closed: StreamClosed) -> bool:
        if self._closing or self.backoff is None or self.session_id is None:
            return False
        if closed.error is not None and closed.error.code in _FINAL_ERRORS:
            return False
        return closed.code in _RESUMABLE_CLOSES or closed.code is None

    async def _reconnect(self, closed: StreamClosed) -> None:
        """Reconnect (once for all callers) or raise the final StreamClosed."""
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.create_task(self._reconnect_loop(closed))
        try:
            await asyncio.shield(self._reconnecting)
        finally:
            if self._reconnecting is not None and self._reconnecting.done():
                self._reconnecting = None
        if self._closed is not None:
            raise self._closed

    async def _reconnect_loop(self, closed: StreamClosed) -> None:
        assert self.backoff is not None
        logger.info("%s: connection lost (%s); reconnecting", self.url, closed)
        if self.events:
            self.events.emit("close", "client", self.session_id or "",
                             detail={"code": closed.code, "reason": closed.reason})
        abnormal = closed.code != CloseCode.GOING_AWAY
        last = closed
        for attempt in range(self.backoff.attempts):
            await asyncio.sleep(self.backoff.delay(attempt))
            self._replayed_up_to = Position.parse(self._last_id)
            try:
                await self._open()
            except (StreamClosed, OSError, TimeoutError) as exc:
                last = exc if isinstance(exc, StreamClosed) else StreamClosed(None, str(exc))
                if last.error is not None and last.error.code in _FINAL_ERRORS:
                    break
                continue
            self.reconnects += 1
            await self._resumed(abnormal)
            return
        self._closed = StreamClosed(last.code, f"gave up reconnecting: {last.reason}",
                                    last.error)

    async def _resumed(self, abnormal: bool) -> None:
        """After a reconnect: report the recovery, send again what has no reply yet."""
        assert self.welcome is not None
        self._last_error = None
        data = self.welcome.data
        recovered = data.get("recovered")
        if self.events:
            self.events.emit("open", "client", self.session_id or "",
                             detail={"resumed": True, "recovered": recovered})
        if recovered:
            logger.info("%s: resumed, %s message(s) replayed", self.url, data.get("replayed"))
            for chat in list(self._unacked.values()):
                await self._write(chat)
        else:
            self._last_id = None
            # recovered None: the client had seen no stream message and asked for none.
            if self._unacked or (abnormal and recovered is False):
                error = StreamError(ErrorCode.RECOVERY_FAILED, data.get("reason") or None,
                                    details={"session_id": self.session_id,
                                             "epoch": data.get("epoch"),
                                             "unanswered": list(self._unacked)})
                self._unacked.clear()
                self._pending.append(Message(MessageType.ERROR, error.to_dict()))
                logger.warning("%s: %s", self.url, error)
        buffered, self._buffered = self._buffered, {}
        for chat in buffered.values():
            self._unacked[chat.id] = chat
            await self._write(chat)

    # -- reading ---------------------------------------------------------------------------

    async def _read_frame(self) -> None:
        """Read one frame into the pending messages (answering pings); caller holds the lock."""
        if self._reconnecting is not None and not self._reconnecting.done():
            await asyncio.wait([self._reconnecting])  # it reads the next socket's welcome
        if self._closed is not None:
            raise self._closed
        assert self._ws is not None
        try:
            frame = await self._ws.recv(decode=False)
        except ConnectionClosed as exc:
            closed = self._closed_error(exc)
            if not self._should_reconnect(closed):
                self._closed = closed
                raise closed from None
            await self._reconnect(closed)
            return
        try:
            messages = parse_server_frame(frame)
        except StreamError as exc:
            logger.warning("ignoring a frame from %s: %s", self.url, exc)
            return
        single = len(messages) == 1
        for message in messages:
            self._deliver(message, len(frame) if single else 0)

    async def _read_while_idle(self) -> None:
        try:
            async with self._lock:
                while len(self._pending) < MAX_PENDING:
                    await self._read_frame()
        except (StreamClosed, asyncio.CancelledError):
            pass

    def _watch(self) -> None:
        """The watchdog: expire receives past their deadline; start the idle reader."""
        self._watchdog, self._watch_at = None, float("inf")
        now = self._loop.time()
        for task, when in self._deadlines.items():
            if when <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        later = [when for when in self._deadlines.values() if when > now]
        if self._closed is not None or self._closing:
            if later:
                self._arm(min(later))
            return
        idle_for = now - self._last_read
        if (self._idle_reader is None and not self._receivers and not self._lock.locked()
                and idle_for >= IDLE_CHECK):
            self._idle_reader = asyncio.create_task(self._read_while_idle())
            idle_for = 0.0
        self._arm(min([now + max(0.01, IDLE_CHECK - idle_for), *later]))

    def _arm(self, when: float) -> None:
        """Make sure the watchdog runs at ``when`` (loop time) at the latest."""
        if when < self._watch_at:
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._watchdog, self._watch_at = self._loop.call_at(when, self._watch), when

    async def _stop_idle_reader(self) -> None:
        reader, self._idle_reader = self._idle_reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.wait([reader])

    def _deliver(self, message: Message, size: int) -> None:
        """Take in one message. Never awaits: a cancelled idle reader loses nothing.

        ``size`` is the frame's length (0 inside a batch: then measured if anyone
        watches the events).
        """
        message_id = message.id
        if ":" in message_id:  # a position in the session's stream
            if self._replayed_up_to is not None:
                position = Position.parse(message_id)
                if position is not None:
                    had = self._replayed_up_to
                    if position.epoch == had.epoch and position.offset <= had.offset:
                        return  # replayed, and we already have it
                    self._replayed_up_to = None
            self._last_id = message_id
        if self.events:
            self.events.emit("in", "client", self.session_id or "", direction="s2c",
                             message=message, size=size or len(encode(message)))
        kind = message.type
        if kind == MessageType.PING:
            if self.auto_pong:
                pong = asyncio.create_task(
                    self._write(Message(MessageType.PONG, {"ping_id": message.id})))
                self._pongs.add(pong)
                pong.add_done_callback(self._pongs.discard)
            return
        if kind == MessageType.END or kind == MessageType.ERROR:
            reply_to = message.data.get("reply_to") if kind == MessageType.END else (
                message.data.get("details") or {}).get("reply_to")
            if reply_to is not None:
                self._unacked.pop(reply_to, None)
            if kind == MessageType.ERROR:
                self._last_error = message.error
        self._pending.append(message)

    # -- writing ----------------------------------------------------------------------------

    async def _write(self, message: Message) -> bool:
        """Put ``message`` on the wire; False if the connection dropped meanwhile."""
        if self._ws is None:
            raise StreamClosed(None, "not connected")
        encoded = encode(message)
        try:
            await self._ws.send(encoded, text=True)
        except ConnectionClosed:
            return False
        if self.events:
            self.events.emit("out", "client", self.session_id or "", direction="c2s",
                             message=message, size=len(encoded))
        return True

    async def _send_message(self, message: Message) -> None:
        if self._closed is not None:
            raise self._closed
        is_chat = message.type == MessageType.CHAT
        if self._reconnecting is not None and not self._reconnecting.done():
            if not is_chat:
                return  # pings and the like mean nothing to the next connection
            if len(self._buffered) >= self.send_buffer:
                raise StreamClosed(None, f"send buffer full: {self.send_buffer} chats wait "
                                         "for the connection to come back")
            self._buffered[message.id] = message  # goes out after the resume
            return
        if is_chat:
            self._unacked[message.id] = message
        if not await self._write(message):
            closed = self._closed_error(None)
            self._unacked.pop(message.id, None)
            if not self._should_reconnect(closed):
                self._closed = closed
                raise closed
            if is_chat:  # websockets refused to write it: it never left
                self._buffered[message.id] = message
            if self._reconnecting is None or self._reconnecting.done():
                self._reconnecting = asyncio.create_task(self._reconnect_loop(closed))

    # -- async API ---------------------------------------------------------------------------

    async def asend(self, type: str | MessageType, data: Any = None) -> Message:
        """Send one envelope; returns it (its ``id`` is what replies refer to).

        While the client is reconnecting, chats wait in a buffer of ``send_buffer``
        messages and go out after the resume.

        Raises:
            StreamClosed: if the connection is closed for good, or the buffer is full.
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
            with _Deadline(self, timeout):
                return await self._next()
        except TimeoutError:
            raise TimeoutError(f"no message from {self.url} within {timeout} s") from None

    async def _next(self) -> Message:
        """The next message, reading the socket if none is pending; no timeout of its own."""
        if not self._pending:
            await self._take_socket()
            try:
                while not self._pending:
                    await self._read_frame()
            finally:
                self._give_socket()
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
            StreamError: when the server answers this chat with an error (e.g.
                RATE_LIMITED: wait ``e.details["retry_after"]`` seconds and retry),
                or RECOVERY_FAILED when a reconnect lost part of the reply.
            TimeoutError: if ``end`` does not arrive within ``timeout`` seconds.
            StreamClosed: if the connection closes for good first.
        """
        return await self._on_loop(
            self._chat(text, self.timeout if timeout is None else timeout, data))

    async def _chat(self, text: str, timeout: float, data: dict[str, Any]) -> list[Message]:
        sent = Message(MessageType.CHAT, {**data, "text": text})
        await self._send_message(sent)
        replies: list[Message] = []
        pending = self._pending
        try:
            with _Deadline(self, timeout):
                await self._take_socket()  # once per chat rather than once per message
                try:
                    while True:
                        while not pending:
                            await self._read_frame()
                        message = pending.popleft()
                        replies.append(message)
                        if message.type == MessageType.END:
                            if message.data.get("reply_to") in (sent.id, None):
                                return replies
                        elif message.type == MessageType.ERROR:
                            error = message.error
                            assert error is not None
                            if (error.details.get("reply_to") == sent.id
                                    or not error.recoverable
                                    or error.code == ErrorCode.RECOVERY_FAILED):
                                raise error
                finally:
                    self._give_socket()
        except TimeoutError:
            raise TimeoutError(f"no end for chat {sent.id} within {timeout} s") from None

    async def aclose(self) -> None:
        """Close the connection (code 1000; the server ends the session). Safe twice."""
        await self._on_loop(self._close())

    async def _close(self) -> None:
        self._closing = True
        await self._stop_idle_reader()
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            await asyncio.wait([self._reconnecting])
            self._reconnecting = None
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

    def _close_for_all(self) -> str | None:
        if self._closed is not None or self._loop.is_closed():
            return None
        self.close()
        return f"client of {self.url} (session {self.session_id}): closed"

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
        return f"<nbstream.Client {self.url} session={self.session_id} {state}>"


class _Deadline:
    """``with _Deadline(client, timeout):`` raises TimeoutError once ``timeout`` passes.

    Like ``asyncio.timeout`` (the task is cancelled, the cancellation becomes a
    TimeoutError) but enforced by the client's watchdog, so a receive that ends in
    time costs no timer.
    """

    __slots__ = ("_cancelling", "_client", "_task")

    def __init__(self, client: Client, timeout: float) -> None:
        self._client = client
        task = asyncio.current_task()
        assert task is not None, "receives run in a task"
        self._task = task
        self._cancelling = task.cancelling()
        when = client._loop.time() + timeout
        client._deadlines[task] = when
        client._arm(when)

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        client, task = self._client, self._task
        del client._deadlines[task]
        if task in client._expired:
            client._expired.discard(task)
            if exc_type is asyncio.CancelledError and task.uncancel() <= self._cancelling:
                raise TimeoutError from exc


async def aconnect(
    url: str | Server, *, session_id: str | None = None, user: str | None = None,
    token: str | None = None, token_in: Literal["header", "query", "message"] = "header",
    timeout: float = DEFAULT_TIMEOUT, open_timeout: float = 10.0,
    max_message_bytes: int | None = 16 * 2**20, ssl: ssl_module.SSLContext | None = None,
    reconnect: bool | Backoff = True, send_buffer: int = 100, auto_pong: bool = True,
) -> Client:
    """Connect to an nbstream server from async code; see :func:`connect`."""
    target = url if isinstance(url, str) else url.url
    params = {"user": user} if user else {}
    headers: dict[str, str] = {}
    if token and token_in == "header":
        headers["Authorization"] = f"Bearer {token}"
    elif token and token_in == "query":
        params["token"] = token
    backoff = reconnect if isinstance(reconnect, Backoff) else (Backoff() if reconnect else None)
    loop = runtime.home_loop()
    client = Client(
        target, loop, timeout=timeout, auto_pong=auto_pong, session_id=session_id,
        params=params, headers=headers,
        auth_message=token if token and token_in == "message" else None,
        open_timeout=open_timeout, max_message_bytes=max_message_bytes, ssl=ssl,
        backoff=backoff, send_buffer=send_buffer,
    )

    async def opening() -> None:
        await client._open()
        client._arm(loop.time() + IDLE_CHECK)

    await runtime.run_on(loop, opening())
    return client


def connect(
    url: str | Server, *, session_id: str | None = None, user: str | None = None,
    token: str | None = None, token_in: Literal["header", "query", "message"] = "header",
    timeout: float = DEFAULT_TIMEOUT, open_timeout: float = 10.0,
    max_message_bytes: int | None = 16 * 2**20, ssl: ssl_module.SSLContext | None = None,
    reconnect: bool | Backoff = True, send_buffer: int = 100, auto_pong: bool = True,
) -> Client:
    """Connect to an nbstream server (or any server speaking the envelope).

    Args:
        url: ``ws://`` or ``wss://`` URL, or a :class:`Server`.
        session_id: Name (or resume) a session; the server makes one up otherwise.
        user: Who you are, for per-user limits, when the server has no ``auth``.
        token: Credentials for a server with ``auth``.
        token_in: Where the token goes: the ``Authorization: Bearer`` header (default),
            the ``token`` query parameter (for browsers, which cannot set headers), or
            a first ``auth`` message.
        timeout: Default seconds for every receive (``recv``, ``chat``, iteration).
        open_timeout: Seconds for the opening handshake.
        max_message_bytes: Largest frame accepted from the server.
        ssl: Client SSL context for ``wss://``; certificates are verified by default.
        reconnect: Reconnect and resume after an abnormal close (True), not at all
            (False), or with your own :class:`nbstream.protocol.Backoff`.
        send_buffer: Chats that may wait for a reconnect before ``send`` fails.
        auto_pong: Answer the server's heartbeat pings (leave on).

    Raises:
        StreamClosed: if the server refuses the connection (e.g. TOO_MANY_CONNECTIONS,
            close code 1013), naming the error and the close code.
    """
    loop = runtime.home_loop()
    return runtime.run_sync(
        aconnect(url, session_id=session_id, user=user, token=token, token_in=token_in,
                 timeout=timeout, open_timeout=open_timeout,
                 max_message_bytes=max_message_bytes, ssl=ssl, reconnect=reconnect,
                 send_buffer=send_buffer, auto_pong=auto_pong),
        loop,
    )

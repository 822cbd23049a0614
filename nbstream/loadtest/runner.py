"""Drives one :class:`~nbstream.loadtest.plan.PlanPart` over real WebSocket connections.

The data path is the plain websockets asyncio client and nothing else: one coroutine
per connection that sends, reads frames as bytes and writes clock readings into its
records. A connection has at most one message in flight, so replies need no
bookkeeping beyond "the current one". No per-message timers either: one
watchdog task aborts connections whose current message is overdue.

Replies to an envelope (``message_type`` set) are matched like this: ``end``,
``error`` and ``pong`` finish the message when they refer to it (``data.reply_to``,
``data.details.reply_to``, ``data.ping_id``) or refer to nothing; everything else is
a streamed reply. The server's ``ping`` envelopes are answered with a ``pong``.
With ``message_type=None`` the first frame back finishes the message.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine, Iterable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from nbstream import wsinternals
from nbstream.events import EventStream
from nbstream.loadtest.errors import LocalError, closed_error, http_error
from nbstream.loadtest.plan import PlanPart
from nbstream.loadtest.recorder import (
    ConnectionRecord,
    MessageRecord,
    Recorder,
)
from nbstream.protocol import Message, MessageType, StreamError, encode, parse_server_frame
from nbstream.redact import redact_text

WATCHDOG_INTERVAL = 0.1
"""Seconds between checks for overdue messages (how late a TIMEOUT may be declared)."""

CONNECT_DEFAULTS: dict[str, Any] = {
    "compression": None,
    "ping_interval": None,
    "close_timeout": 2.0,
    "user_agent_header": "nbstream-loadtest",
}
"""websockets ``connect`` options the load tester changes; ``connect_options`` win.

No compression and no keepalive pings of our own keep the generator's cost per
message minimal; the server's pings are still answered by websockets.
"""


class _Connection:
    """One client connection: its socket, its record and the message in flight."""

    __slots__ = ("closing", "current", "current_id", "deadline_ns", "index", "record",
                 "recorder", "session", "timed_out", "waiter", "ws")

    def __init__(self, index: int, recorder: Recorder) -> None:
        self.index = index
        self.session = str(index)
        self.recorder = recorder
        self.record: ConnectionRecord = recorder.connection(index)
        self.ws: ClientConnection | None = None
        self.current: MessageRecord | None = None
        self.current_id: str | None = None
        self.deadline_ns = 0
        self.timed_out = False
        self.closing = False
        self.waiter: asyncio.Future[None] | None = None

    @property
    def alive(self) -> bool:
        """Connected, and neither failed (``record.error``) nor closing."""
        return self.ws is not None and self.record.error is None and not self.closing

    def settle(self, now: int, error: str | None = None, answered: bool = True) -> None:
        """The current message is done; wake whoever waits for it."""
        record = self.current
        assert record is not None
        self.current = None
        self.recorder.finish(record, now, error, answered)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def lost(self, exc: ConnectionClosed, now: int) -> None:
        """The connection ended under us: fail the current message and the connection."""
        code = exc.rcvd.code if exc.rcvd is not None else None
        error = LocalError.TIMEOUT if self.timed_out else closed_error(code)
        if self.current is not None:
            self.settle(now, error, answered=False)
        if self.record.error is None:
            self.record.error = error

    def on_raw(self, frame: bytes, now: int, events: EventStream) -> None:
        """A frame from a plain server: it answers the current message."""
        if events:
            events.emit("in", "client", self.session, direction="s2c", size=len(frame))
        record = self.current
        if record is None:
            return
        record.first_ns = now
        record.replies = 1
        record.bytes_in = len(frame)
        self.settle(now)

    def on_envelope(self, frame: bytes, now: int, events: EventStream) -> bytes | None:
        """A frame from an envelope server; returns a pong to send, if it pinged."""
        try:
            messages = parse_server_frame(frame)
        except StreamError:
            messages = [Message(MessageType.CONTENT, None)]  # not an envelope: a reply
        if not messages:
            return None  # an empty batch
        size = len(frame) // len(messages)
        pong = None
        for message in messages:
            if events:
                events.emit("in", "client", self.session, direction="s2c", message=message,
                            size=size)
            kind = message.type
            if kind == MessageType.PING:
                pong = encode(Message(MessageType.PONG, {"ping_id": message.id}))
                continue
            refers_to = _refers_to(message)
            record = self.current
            if record is None or (refers_to is not None and refers_to != self.current_id):
                if kind == MessageType.ERROR:
                    self.fail_if_fatal(message)
                continue
            record.replies += 1
            record.bytes_in += size
            if not record.first_ns:
                record.first_ns = now
            if kind == MessageType.END or kind == MessageType.PONG:
                self.settle(now)
            elif kind == MessageType.ERROR:
                self.settle(now, _error_code(message))
                self.fail_if_fatal(message)
        return pong

    def fail_if_fatal(self, error: Message) -> None:
        """An unrecoverable error (e.g. TOO_MANY_CONNECTIONS) ends the connection."""
        data = error.data
        if isinstance(data, dict) and data.get("recoverable") is False \
                and self.record.error is None:
            self.record.error = _error_code(error)  # the server closes next


def _refers_to(message: Message) -> str | None:
    """The id of the client message this envelope answers, if it names one."""
    data = message.data
    if not isinstance(data, dict):
        return None
    if message.type == MessageType.ERROR:
        details = data.get("details")
        ref = details.get("reply_to") if isinstance(details, dict) else None
    elif message.type == MessageType.PONG:
        ref = data.get("ping_id")
    else:
        ref = data.get("reply_to")
    return ref if isinstance(ref, str) else None


def _error_code(message: Message) -> str:
    data = message.data
    code = data.get("code") if isinstance(data, dict) else None
    return str(code) if code else "ERROR"


class Runner:
    """Runs one plan part: connects, sends on the plan's schedule, records everything.

    Create it, ``await run()`` (returns once every connection is closed and every
    planned message has a row), and read the rows from the recorder. ``cancel()``
    stops early; messages in flight become CANCELLED rows.
    """

    def __init__(self, part: PlanPart, recorder: Recorder,
                 events: EventStream | None = None) -> None:
        self.part = part
        self.plan = part.plan
        self.recorder = recorder
        self.events = events if events is not None else EventStream()
        self.cancelled = False
        self._tasks: list[asyncio.Task[None]] = []
        self._slots: deque[int] = deque(part.slots)
        self._timetable_ns = 0
        self._timeout_ns = round(self.plan.timeout * 1e9)
        self._options = {**CONNECT_DEFAULTS, "open_timeout": self.plan.timeout,
                         **self.plan.connect_options}

    async def run(self) -> None:
        """Run the part to the end (or until :meth:`cancel`); never raises for the network."""
        plan, recorder = self.plan, self.recorder
        conns = [_Connection(i, recorder) for i in self.part.connections]
        watchdog = asyncio.create_task(self._watch(conns))
        try:
            if plan.model == "closed":
                await self._all(self._closed(c) for c in conns)
            else:
                await self._all(self._connect(c) for c in conns)
                self._timetable_ns = max(recorder.clock(),
                                         recorder.t0_ns + round(plan.ramp_up * 1e9))
                await self._all(self._open(c) for c in conns if c.alive)
        finally:
            watchdog.cancel()
            # Connections whose task was cancelled before it started are still open.
            await asyncio.gather(*(self._close(c) for c in conns))
            self._finish_rows(conns)

    def cancel(self) -> None:
        """Stop now: close every connection; in-flight messages become CANCELLED."""
        self.cancelled = True
        for task in self._tasks:
            task.cancel()

    async def _all(self, coros: Iterable[Coroutine[Any, Any, Any]]) -> None:
        self._tasks = [asyncio.create_task(c) for c in coros]
        if self.cancelled:
            self.cancel()
        for outcome in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                raise outcome  # a bug, not a network error: those are rows

    def _frame(self, connection: int, i: int) -> tuple[bytes, bool, str | None, Message | None]:
        """The frame for message ``i``: bytes, text or binary, envelope id, envelope."""
        payload = self.plan.text(connection, i)
        message_type = self.plan.message_type
        if message_type is None:
            if isinstance(payload, bytes):
                return payload, False, None, None
            return payload.encode(), True, None, None
        message = Message(message_type, {"text": payload})
        return encode(message), True, message.id, message

    # -- connecting and closing ------------------------------------------------------

    async def _connect(self, conn: _Connection) -> bool:
        recorder, record = self.recorder, conn.record
        delay = recorder.t0_ns + round(self.plan.connect_delay(conn.index) * 1e9) - recorder.clock()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        record.started_ns = recorder.clock()
        try:
            conn.ws = await connect(self.plan.url, **self._options)
        except InvalidStatus as exc:
            error, reason = http_error(exc.response.status_code), str(exc)
        except TimeoutError:
            error, reason = LocalError.CONNECT_TIMEOUT, "opening handshake timed out"
        except ConnectionRefusedError as exc:
            error, reason = LocalError.CONNECTION_REFUSED, str(exc)
        except (InvalidHandshake, ConnectionClosed) as exc:
            error, reason = LocalError.HANDSHAKE_FAILED, str(exc)
        except OSError as exc:
            error, reason = LocalError.CONNECT_FAILED, str(exc)
        else:
            record.connected_ns = recorder.clock()
            recorder.connections_open += 1
            if self.events:
                self.events.emit("open", "client", conn.session)
            return True
        record.closed_ns = recorder.clock()
        record.error, record.close_reason = error, redact_text(reason)[:200]
        return False

    async def _close(self, conn: _Connection) -> None:
        ws = conn.ws
        if ws is None or conn.closing:
            return
        conn.closing = True
        await ws.close()
        record = conn.record
        record.closed_ns = self.recorder.clock()
        record.close_code, record.close_reason = ws.close_code, ws.close_reason or ""
        self.recorder.connections_open -= 1
        if self.events:
            self.events.emit("close", "client", conn.session,
                             detail={"code": ws.close_code, "reason": record.close_reason})

    async def _watch(self, conns: list[_Connection]) -> None:
        """Abort connections whose message is overdue; they then fail it with TIMEOUT."""
        clock = self.recorder.clock
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL)
            now = clock()
            for conn in conns:
                if conn.current is not None and now > conn.deadline_ns and not conn.timed_out:
                    conn.timed_out = True
                    if conn.ws is not None:
                        wsinternals.abort(conn.ws)

    # -- the two models -----------------------------------------------------------------

    async def _closed(self, conn: _Connection) -> None:
        """Connect, then send each message as soon as the previous one is answered."""
        plan, recorder, events = self.plan, self.recorder, self.events
        clock, timeout_ns = recorder.clock, self._timeout_ns
        count = plan.messages if plan.duration is None else None
        end_ns = (recorder.t0_ns + round((plan.ramp_up + plan.duration) * 1e9)
                  if plan.duration is not None else None)
        raw = plan.message_type is None
        on_raw, on_envelope = conn.on_raw, conn.on_envelope
        i = 0
        try:
            if not await self._connect(conn):
                return
            ws = conn.ws
            assert ws is not None
            while count is None or i < count:
                if conn.record.error is not None or (end_ns is not None and clock() >= end_ns):
                    break
                frame, text, conn.current_id, message = self._frame(conn.index, i)
                now = clock()
                conn.current = recorder.message(conn.index, i, now, now, len(frame))
                conn.deadline_ns = now + timeout_ns
                i += 1
                try:
                    await ws.send(frame, text=text)
                except ConnectionClosed:
                    pass  # read what the server sent before closing (e.g. its error) below
                if events:
                    events.emit("out", "client", conn.session, direction="c2s",
                                message=message, size=len(frame))
                while conn.current is not None:
                    data = await ws.recv(decode=False)
                    if raw:
                        on_raw(data, clock(), events)
                    else:
                        pong = on_envelope(data, clock(), events)
                        if pong is not None:
                            await ws.send(pong, text=True)
        except ConnectionClosed as exc:
            conn.lost(exc, clock())
        finally:
            if count is not None and not self.cancelled:
                for seq in range(i, count):
                    recorder.not_sent(conn.index, seq)
            await self._close(conn)

    async def _open(self, conn: _Connection) -> None:
        """Take the next due slot, wait for its time, send it, wait for its answer."""
        ws = conn.ws
        assert ws is not None
        recorder, events, slots = self.recorder, self.events, self._slots
        clock, timeout_ns = recorder.clock, self._timeout_ns
        loop = asyncio.get_running_loop()
        reader = asyncio.create_task(self._read(conn))
        try:
            while slots and conn.alive:
                slot = slots.popleft()
                due = self._due_ns(slot)
                delay = due - clock()
                if delay > 0:
                    await asyncio.sleep(delay / 1e9)
                if not conn.alive:
                    slots.appendleft(slot)  # another connection sends it
                    break
                frame, text, conn.current_id, message = self._frame(conn.index, slot)
                conn.waiter = loop.create_future()
                now = clock()
                conn.current = recorder.message(conn.index, slot, due, now, len(frame))
                conn.deadline_ns = now + timeout_ns
                try:
                    await ws.send(frame, text=text)
                except ConnectionClosed:
                    pass  # the reader reads what came before the close, then fails it
                if events:
                    events.emit("out", "client", conn.session, direction="c2s",
                                message=message, size=len(frame))
                await conn.waiter
        finally:
            await self._close(conn)
            await reader

    async def _read(self, conn: _Connection) -> None:
        """Read every frame of an open-model connection, between messages too."""
        ws = conn.ws
        assert ws is not None
        clock, events = self.recorder.clock, self.events
        raw = self.plan.message_type is None
        try:
            while True:
                data = await ws.recv(decode=False)
                if raw:
                    conn.on_raw(data, clock(), events)
                else:
                    pong = conn.on_envelope(data, clock(), events)
                    if pong is not None:
                        await ws.send(pong, text=True)
        except ConnectionClosed as exc:
            if not conn.closing:
                conn.lost(exc, clock())

    def _due_ns(self, slot: int) -> int:
        return self._timetable_ns + round(self.plan.intended(slot) * 1e9)

    def _finish_rows(self, conns: list[_Connection]) -> None:
        """Give every message a row: in flight -> CANCELLED, never taken -> NOT_SENT."""
        now = self.recorder.clock()
        for conn in conns:
            if conn.current is not None:
                conn.settle(now, LocalError.CANCELLED, answered=False)
        if not self.cancelled:
            for slot in self._slots:
                self.recorder.not_sent(-1, slot, self._due_ns(slot))
            self._slots.clear()


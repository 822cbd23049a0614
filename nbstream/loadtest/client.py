"""The load generator's client: ``nbstream.Client``'s API for one connection, minus
everything a load test does not want on its data path.

No watchdog task, no reconnect, no idle reader, no event history: whoever
receives reads the transport directly, one request is in flight at a time, and a
request's deadline is kept by the runner's single watchdog, which aborts the
connection of an overdue request (its later replies could not be told apart).
Framing goes through the protocol seam (:mod:`nbstream.wire`) and reply matching
through :func:`nbstream.protocol.replies.request_step`, as in ``nbstream.Client``.

A request reads only what arrives after it was sent; messages read while nothing
was asked (``recv``, think time) wait for ``recv``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from nbstream.client.messages import NO_DATA, chat_message, message_for
from nbstream.client.sync import SyncTwins
from nbstream.client.turns import MAX_PENDING
from nbstream.events import BINARY, TEXT, EventStream
from nbstream.loadtest.errors import LocalError, closed_error
from nbstream.loadtest.recorder import ConnectionRecord, MessageRecord, Recorder
from nbstream.loadtest.transport import Transport, TransportClosed
from nbstream.protocol import Message, MessageType, StreamClosed, StreamError
from nbstream.protocol.replies import ReplyStep, Until, first_frame_ends, request_step
from nbstream.redact import redact_url
from nbstream.wire import Encoded, WireProtocol

# Enum members read once: on Python 3.11 each read through the class costs 70 ns.
_PING = MessageType.PING
_OTHER, _PART, _END = ReplyStep.OTHER, ReplyStep.PART, ReplyStep.END


class LoadClient(SyncTwins):
    """One connection of a load test, with the send/recv/request/chat API of
    :class:`nbstream.Client` (``user.client`` in a scenario).

    Prefer the async forms (``await client.arequest(...)``) in a scenario: the plain
    ones block this user's loop turn until they are done.
    """

    def __init__(self, index: int, url: str, transport: Transport, protocol: WireProtocol,
                 recorder: Recorder, record: ConnectionRecord, events: EventStream,
                 timeout: float) -> None:
        self.index = index
        self.url = url
        self._shown_url = redact_url(url)
        self.protocol = protocol
        self.timeout = timeout
        """Default seconds for every receive and request."""
        self.events = events
        self.record = record
        """This connection's row."""
        self.current: MessageRecord | None = None
        """The timed request in flight, if any."""
        self.deadline_ns = 0
        """When the request in flight is overdue (0: nothing in flight); the watchdog reads it."""
        self.timed_out = False
        self.alive = True
        """Open, and not failed (``record.error``): the runner's loops read it every turn."""
        self.recorded: BaseException | None = None
        """The latest error a timed request raised after recording its row."""
        self._transport = transport
        self.first_frame_ends = first_frame_ends(protocol.ends_replies,
                                                protocol.in_band_heartbeat)
        """Any frame back answers a request (no reply ends, no in-band pings)."""
        self._recorder = recorder
        self._session = str(index)
        self._pending: deque[Message] = deque()
        self._closed: StreamClosed | None = None
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._clock = recorder.clock
        self._keep = recorder.messages.append
        self._finished = recorder.finished.append
        self._timeout_for = timeout
        self._timeout_ns = round(timeout * 1e9)
        """``timeout`` in ns, for the latest timeout seen (round() costs 55 ns a message)."""
        self.read_frame = transport.recv
        """The next frame from the server (see :meth:`start`)."""
        self.closed_error = transport.closed_error
        """What :attr:`read_frame` raises once the connection is closed."""
        self.outgoing: Callable[[Any], Message | Encoded] = (
            protocol.to_message if protocol.ends_replies else protocol.frame)
        """What :meth:`exchange` sends for ``request(value)``: the message, or just its
        frame where replies name no request (no message built). Raises TypeError for a
        value the protocol cannot send."""

    @property
    def session_id(self) -> str:
        """The connection's index, as events and views name it."""
        return self._session

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server agreed to, if any."""
        return self._transport.subprotocol

    @property
    def closed(self) -> StreamClosed | None:
        """Why the connection closed, or None while it is open."""
        return self._closed

    def abort(self) -> None:
        """The request in flight is overdue: drop the connection; the request then fails
        with TIMEOUT (called by the runner's watchdog)."""
        self.timed_out = True
        self._transport.abort()

    # -- the timed exchange (the data path) ---------------------------------------------

    async def exchange(self, request: Message | Encoded, until: Until | None, timeout: float,
                       seq: int = -1, step: str | None = None, intended_ns: int = 0,
                       lag_ns: int = 0, keep: bool = True) -> list[Message]:
        """Send ``request`` and read its replies; with ``seq`` >= 0, record it as a row.

        ``request`` is a message, or the frame of one (``protocol.frame(value)``) where
        replies name no request.

        The row's intended time is ``intended_ns`` if given, else the send time minus
        ``lag_ns`` (how late the scenario iteration started). ``keep=False`` returns no
        replies: where the first frame back is the answer whatever it holds, it is then
        not even decoded (unless someone watches the events).

        Raises:
            StreamError: the server answered with an error (the connection goes on
                unless the error is unrecoverable).
            TimeoutError: no final reply within ``timeout``; the connection is aborted.
            StreamClosed: the connection closed first.
        """
        if self._closed is not None:
            raise self._closed
        protocol, transport, watched = self.protocol, self._transport, self.events.listened
        encoded = request if isinstance(request, Encoded) else protocol.encode(request)
        record = self.start(encoded, seq, timeout, step, intended_ns, lag_ns)
        if watched:
            self._emit_out(request, encoded.data, encoded.text)
        replies: list[Message] = []
        try:
            if until is None and self.first_frame_ends and not watched:
                # Whatever the first frame holds, it is the answer (request_step says so
                # for any message of such a protocol): decode it only to return it.
                frame = await transport.recv()
                self.answered(record, frame)
                if keep:  # _decode inline: a scenario's every request comes this way
                    try:
                        replies = protocol.decode_replies(frame)
                    except StreamError as exc:
                        replies = [Message(MessageType.ERROR, exc.to_dict())]
                    if len(replies) > 1:
                        self._pending.extend(replies[1:])
                        return replies[:1]
                return replies
            request_id = None  # what request_step matches replies against (no until)
            if until is None and isinstance(request, Message):
                request_id = request.id
            while True:  # nothing cached in locals: most requests take one turn of it
                frame = await transport.recv()
                now = self._clock()
                try:  # _decode inline, as _settle below: every reply of a request comes here
                    messages = protocol.decode_replies(frame)
                except StreamError as exc:
                    messages = [Message(MessageType.ERROR, exc.to_dict())]
                count = len(messages)
                if not count:
                    continue  # an empty batch
                size = len(frame) // count
                batch = iter(messages)
                for message in batch:
                    if watched:
                        self._emit_in(message, size, frame if count == 1 else None)
                    if message.type == _PING and protocol.in_band_heartbeat:
                        self._pong(message)
                        continue
                    if keep:
                        replies.append(message)
                    if until is not None:
                        outcome = _END if until(message) else _PART
                    else:
                        outcome = request_step(message, request_id, None, protocol.ends_replies)
                        if outcome is _OTHER:
                            continue
                    if record is not None:
                        record.replies += 1
                        record.bytes_in += size
                        if not record.first_ns:
                            record.first_ns = now
                    if outcome is _PART:
                        continue
                    if count > 1:  # the rest of the batch waits for recv
                        self._pending.extend(batch)
                    if outcome is _END:
                        self.deadline_ns = 0
                        if record is not None:
                            self.current = None
                            record.done_ns, record.answered = now, True
                            self._finished(record)
                        return replies
                    error = message.error
                    assert error is not None  # FAILED is always an error message
                    self._settle(record, now, str(error.code))
                    if not error.recoverable and self.record.error is None:
                        self.record.error = str(error.code)  # the server closes next
                        self.alive = False
                    if record is not None:
                        self.recorded = error
                    raise error
        except transport.closed_error as exc:
            named = f"request {request.id}" if isinstance(request, Message) else "request"
            raise self.lost(record, exc, timeout, named) from None

    # -- the steps of a timed exchange (the built-in flow takes them itself) -------------

    def start(self, encoded: Encoded, seq: int, timeout: float, step: str | None = None,
              intended_ns: int = 0, lag_ns: int = 0) -> MessageRecord | None:
        """Send ``encoded`` now and start its row if ``seq`` >= 0 (the rest as
        :meth:`exchange`); the watchdog aborts the connection after ``timeout`` seconds.
        Then read the answer: ``read_frame()``, and :meth:`answered` where
        :attr:`first_frame_ends`, or :meth:`lost` if it raises :attr:`closed_error`."""
        now = self._clock()
        data = encoded.data
        record = None
        if seq >= 0:  # Recorder.message inline (as finish in answered): a call less each
            record = MessageRecord(self.index, seq, intended_ns or now - lag_ns, now,
                                   len(data), step)
            self._keep(record)
            self.current = record
        if timeout != self._timeout_for:
            self._timeout_for, self._timeout_ns = timeout, round(timeout * 1e9)
        self.deadline_ns = now + self._timeout_ns
        self._transport.send(data, encoded.text)
        return record

    def answered(self, record: MessageRecord | None, frame: str | bytes) -> None:
        """``frame`` answered the request of ``record`` (None: an untimed one)."""
        self.deadline_ns = 0
        if record is not None:
            record.first_ns = record.done_ns = self._clock()
            record.replies, record.bytes_in, record.answered = 1, len(frame), True
            self.current = None
            self._finished(record)

    def lost(self, record: MessageRecord | None, exc: BaseException, timeout: float,
             named: str = "request") -> Exception:
        """The connection closed (``exc``, a ``closed_error``) before the request of
        ``record`` was answered: records it, and returns what to raise (TimeoutError
        when the watchdog closed it, else StreamClosed)."""
        now = self._clock()
        closed = self._lost(self._transport.closed(exc))
        self._settle(record, now, LocalError.TIMEOUT if self.timed_out
                     else closed_error(closed.code), answered=False)
        failure: Exception = closed
        if self.timed_out:
            failure = TimeoutError(f"no reply to {named} within {timeout} s")
        if record is not None:
            self.recorded = failure
        return failure

    def _settle(self, record: MessageRecord | None, now: int, error: str | None = None,
                answered: bool = True) -> None:
        self.deadline_ns = 0
        if record is not None:
            self.current = None
            self._recorder.finish(record, now, error, answered)

    def _decode(self, frame: str | bytes) -> list[Message]:
        """The messages in ``frame`` (none for an empty batch)."""
        try:
            return self.protocol.decode_replies(frame)
        except StreamError as exc:  # the server broke its protocol: an error reply
            return [Message(MessageType.ERROR, exc.to_dict())]

    def _pong(self, ping: Message) -> None:
        pong = self.protocol.pong(ping)
        encoded = self.protocol.encode(pong)
        self._transport.send(encoded.data, encoded.text)
        if self.events:
            self._emit_out(pong, encoded.data, encoded.text)

    def _lost(self, exc: TransportClosed) -> StreamClosed:
        """The connection ended under us: remember why, for this and later calls."""
        if self.record.error is None:
            self.record.error = LocalError.TIMEOUT if self.timed_out else closed_error(exc.code)
        self._closed = StreamClosed(exc.code, exc.reason)
        self.alive = False
        return self._closed

    def _emit_out(self, request: Message | Encoded, data: bytes, text: bool) -> None:
        message = request if isinstance(request, Message) else self.protocol.decode_request(
            data.decode(errors="replace") if text else data)
        self.events.emit("out", "client", self._session, direction="c2s",
                         message=message if isinstance(message, Message) else None,
                         size=len(data), opcode=TEXT if text else BINARY,
                         payload=data.decode(errors="replace") if text else data)

    def _emit_in(self, message: Message, size: int, frame: str | bytes | None) -> None:
        self.events.emit("in", "client", self._session, direction="s2c", message=message,
                         size=size, opcode=BINARY if isinstance(frame, bytes) else TEXT,
                         payload=frame)

    # -- reading outside requests ---------------------------------------------------------

    async def _read_pending(self) -> None:
        """Read one frame into the pending messages, answering pings."""
        if self._closed is not None:
            raise self._closed
        transport = self._transport
        try:
            frame = await transport.recv()
        except transport.closed_error as exc:
            raise self._lost(transport.closed(exc)) from None
        messages = self._decode(frame)
        size = len(frame) // max(1, len(messages))
        for message in messages:
            if self.events:
                self._emit_in(message, size, frame if len(messages) == 1 else None)
            if message.type == _PING and self.protocol.in_band_heartbeat:
                self._pong(message)
            else:
                self._pending.append(message)

    async def idle(self, seconds: float) -> None:
        """Wait ``seconds`` while reading what arrives (pings answered, messages kept for
        ``recv``, up to MAX_PENDING); a connection that closes meanwhile stays closed."""
        if seconds <= 0:
            return
        deadline = self._loop.time() + seconds
        try:
            async with asyncio.timeout_at(deadline):
                while self._closed is None and len(self._pending) < MAX_PENDING:
                    await self._read_pending()
                await asyncio.sleep(deadline - self._loop.time())
        except (TimeoutError, StreamClosed):
            pass

    # -- nbstream.Client's API ---------------------------------------------------------------

    async def asend(self, item: Any, data: Any = NO_DATA) -> Message:
        """Send one message now; returns it. Same values as ``nbstream.Client.asend``.

        Raises:
            StreamClosed: if the connection is closed.
            TypeError: for a value the protocol cannot send.
        """
        message = message_for(self.protocol, item, data)
        if self._closed is not None:
            raise self._closed
        encoded = self.protocol.encode(message)
        self._transport.send(encoded.data, encoded.text)
        if self.events:
            self._emit_out(message, encoded.data, encoded.text)
        return message

    async def arecv(self, timeout: float | None = None) -> Message:
        """The next message from the server (batches come out one message at a time).

        Raises:
            TimeoutError: if nothing arrives within ``timeout`` (default: the test's);
                the connection stays open.
            StreamClosed: once the connection is closed and every message was read.
        """
        wait = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(wait):
                while not self._pending:
                    await self._read_pending()
        except TimeoutError:
            raise TimeoutError(f"no message from {self._shown_url} within {wait} s") from None
        return self._pending.popleft()

    async def arequest(self, value: Any, until: Until | None = None,
                       timeout: float | None = None) -> list[Message]:
        """Send ``value`` and return the replies up to and including the first for which
        ``until(message)`` is true (default: the first reply; nbstream protocol: the
        ``end`` or error that answers it). Not timed: ``user.request`` is.

        Raises:
            StreamError: (nbstream protocol) when the server answers with an error.
            TimeoutError: if the last reply does not arrive within ``timeout`` seconds;
                the connection is then aborted.
            StreamClosed: if the connection closes first.
        """
        return await self.exchange(self.outgoing(value), until,
                                   self.timeout if timeout is None else timeout)

    async def achat(self, text: str, timeout: float | None = None, **data: Any
                    ) -> list[Message]:
        """Send a chat and return everything streamed back, up to and including ``end``.

        Raises:
            TypeError: when ``text`` is not a str or the protocol has no chat.
            StreamError, TimeoutError, StreamClosed: as :meth:`arequest`.
        """
        return await self.exchange(chat_message(self.protocol, text, data), None,
                                   self.timeout if timeout is None else timeout)

    async def aclose(self) -> None:
        """Close the connection (code 1000). Safe twice; the test closes it anyway."""
        if self._closing:
            return
        self._closing = True
        await self._transport.close()
        transport, record = self._transport, self.record
        record.close_code, record.close_reason = transport.close_code, transport.close_reason
        record.closed_ns = self._recorder.clock()
        self._recorder.connections_open -= 1
        if self._closed is None:
            self._closed = StreamClosed(transport.close_code, transport.close_reason)
        self.alive = False
        if self.events:
            self.events.emit("close", "client", self._session,
                             detail={"code": record.close_code, "reason": record.close_reason})

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"<nbstream.loadtest.LoadClient {self._shown_url} #{self.index} "
                f"protocol={self.protocol.name} {state}>")


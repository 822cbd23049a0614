"""One WebSocket on the server: the thin shell around a :class:`ServerConnectionCore`.

The receive loop decodes each frame with the connection's wire protocol, asks the
core what to do and does it without waiting: requests go to the session (whose
replies run in tasks of their own), pongs and errors go straight to the outbox. The
server's tick calls :meth:`Connection.tick` for heartbeats, the authentication
deadline and slow consumers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from nbstream import wsinternals
from nbstream.events import BINARY, PING, PONG, TEXT, EventStream
from nbstream.protocol import CloseCode, Message, Session, StreamError, new_id
from nbstream.protocol.closing import CloseCause
from nbstream.protocol.connection import (
    Action,
    AnswerPing,
    Authenticate,
    Close,
    Dispatch,
    Incoming,
    Limits,
    Ping,
    Report,
    RoundTrip,
    ServerConnectionCore,
)
from nbstream.protocol.ratelimit import TokenBucket
from nbstream.server.auth import Authenticator
from nbstream.server.options import ServerOptions
from nbstream.server.outbox import Outbox
from nbstream.wire import WireProtocol

logger = logging.getLogger(__name__)


_WHY = {
    CloseCause.HEARTBEAT_TIMEOUT: "missed its heartbeat",
    CloseCause.SLOW_CONSUMER: "is a slow consumer (its socket is stuck)",
    CloseCause.AUTH_TIMEOUT: "sent no credentials in time",
    CloseCause.UNAUTHORIZED: "sent invalid credentials",
}
"""What the log says about a close the connection core decided."""


class Attached(Protocol):
    """What a connection needs of the session it is attached to (a LiveSession)."""

    session: Session

    def accept(self, request: Message) -> StreamError | None:
        """Take a request for the handler, or return the error that refuses it."""

    def report(self, error: StreamError) -> None:
        """Report ``error`` in the session's stream, never waiting."""


class Connection:
    """The server side of one WebSocket; :attr:`live` is its session once admitted."""

    def __init__(self, ws: ServerConnection, protocol: WireProtocol, session_id: str,
                 options: ServerOptions, events: EventStream, *,
                 on_batch: Callable[[int], None] | None = None) -> None:
        now = time.monotonic()
        self.ws = ws
        self.protocol = protocol
        self.session_id = session_id
        self.user: str | None = None
        self.options = options
        self.events = events
        self.core = ServerConnectionCore(
            Limits(options.heartbeat_interval, options.heartbeat_timeout,
                   options.auth_timeout, options.send_timeout, options.rate_limit,
                   options.burst),
            now, new_id=new_id)
        batching = protocol.ends_replies and options.batch_max_size > 1
        self.outbox = Outbox(ws, max_bytes=options.max_queue_bytes,
                             batch_max_size=options.batch_max_size if batching else 1,
                             batch_max_wait=options.batch_max_wait,
                             on_overflow=self._overflowed, on_batch=on_batch)
        self.live: Attached | None = None
        self._control_types = protocol.control_types
        self.close_code: int | None = None
        """The code this server closed with (None: the client or the network closed)."""
        self.close_reason = ""
        self._closing: asyncio.Task[None] | None = None
        self._pings: set[asyncio.Task[None]] = set()

    def limit_user(self, bucket: TokenBucket | None) -> None:
        """Count this connection's messages against its user's rate limit too."""
        self.core.user_bucket = bucket

    # -- before a session: credentials sent as a first message ----------------------------

    async def authenticate(self, authenticator: Authenticator) -> str | None:
        """Wait (up to ``auth_timeout``, enforced by the tick) for an ``auth`` message.

        Returns the user, or None once the connection is refused and closing.
        """
        self.core.require_auth(time.monotonic())
        try:
            async for frame in self.ws:
                parsed = self.protocol.decode_request(frame)
                now = time.monotonic()
                if isinstance(parsed, StreamError):
                    actions = self.core.invalid(parsed, now)
                else:
                    actions = self.core.receive(self.protocol.incoming(parsed), parsed, now)
                for action in actions:
                    if isinstance(action, Authenticate):
                        user = await authenticator.user_for(action.token)
                        if user is not None:
                            self.core.authenticated()
                            return user
                        logger.info("refused a connection with an invalid auth message")
                        for refusal in self.core.refuse_credentials():
                            self._do(refusal)
                    else:
                        self._do(action)
                if self._closing is not None:
                    await self._closing
                    return None
        except ConnectionClosed:
            pass
        return None

    # -- the receive loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Read frames until the connection closes."""
        on_frame = self.on_frame
        async for frame in self.ws:
            on_frame(frame)

    def on_frame(self, frame: str | bytes) -> None:
        """One frame from the client: decode it, ask the core, act; never waits."""
        now = time.monotonic()
        protocol, live = self.protocol, self.live
        parsed = protocol.decode_request(frame)
        if live is not None:
            live.session.record_in(len(frame))
        if self.events:
            self._emit_in(frame, parsed)
        if isinstance(parsed, StreamError):
            actions = self.core.invalid(parsed, now)
        else:
            kind = self._control_types.get(parsed.type, Incoming.REQUEST)
            actions = self.core.receive(kind, parsed, now)
        for action in actions:
            if type(action) is Dispatch:
                assert live is not None
                refused = live.accept(action.message)
                if refused is not None:
                    live.report(refused)
            else:
                self._do(action)

    def _emit_in(self, frame: str | bytes, parsed: Message | StreamError) -> None:
        text = isinstance(frame, str)
        self.events.emit(
            "in", "server", self.session_id, direction="c2s",
            message=parsed if isinstance(parsed, Message) else None,
            size=len(frame), user=self.user, opcode=TEXT if text else BINARY, payload=frame,
            detail=None if isinstance(parsed, Message) else {
                "raw": frame[:200], "error": parsed.to_dict()})

    def tick(self, now: float) -> None:
        """Time passed: heartbeat, authentication deadline, slow consumer."""
        for action in self.core.tick(now, self.outbox.busy_since):
            self._do(action)

    def _do(self, action: Action) -> None:
        if isinstance(action, AnswerPing):
            self.send_control(self.protocol.pong(action.ping))
        elif isinstance(action, Report):
            if self.live is not None:
                self.live.report(action.error)
            else:
                self._report_now(action.error)
        elif isinstance(action, Ping):
            self._ping(action.ping_id)
        elif isinstance(action, RoundTrip):
            if self.events:
                self.events.emit("heartbeat", "server", self.session_id, user=self.user,
                                 detail={"rtt": action.rtt})
        elif isinstance(action, Close):
            level = logging.WARNING if action.cause is CloseCause.SLOW_CONSUMER else logging.INFO
            logger.log(level, "session %s %s; closing with %d (%s)", self.session_id,
                       _WHY.get(action.cause, action.cause.value), action.code, action.reason,
                       extra={"session_id": self.session_id, "user": self.user})
            if action.error is not None:
                self._report_now(action.error)
            self._close_in_background(action.code, action.reason, action.cause)
        else:
            raise AssertionError(f"{action!r} is not handled here")

    # -- sending outside the session's stream -----------------------------------------------

    def send_control(self, message: Message) -> None:
        """Queue a ping, pong, welcome or shutdown notice; never waits."""
        encoded = self.protocol.encode(message)
        if self.live is not None:
            self.live.session.count_out(len(encoded.data))
        if self.events:
            data = encoded.data
            self.events.emit("out", "server", self.session_id, direction="s2c",
                             message=message, size=len(data), user=self.user,
                             opcode=TEXT if encoded.text else BINARY,
                             payload=data.decode(errors="replace") if encoded.text else data)
        self.outbox.put(encoded, urgent=True)

    def _report_now(self, error: StreamError) -> None:
        message = self.protocol.error_message(error)
        if message is not None:
            self.send_control(message)

    def _ping(self, ping_id: str) -> None:
        if self.protocol.in_band_heartbeat:
            self.send_control(self.protocol.ping(ping_id))
            return
        task = asyncio.ensure_future(self._websocket_ping(ping_id))
        self._pings.add(task)
        task.add_done_callback(self._pings.discard)

    async def _websocket_ping(self, ping_id: str) -> None:
        """A WebSocket ping; its pong feeds the same heartbeat as in-band pongs."""
        try:
            if self.events:
                self.events.emit("out", "server", self.session_id, direction="s2c",
                                 user=self.user, opcode=PING, payload=ping_id.encode())
            pong = await self.ws.ping(ping_id)
            await pong
        except (ConnectionClosed, asyncio.CancelledError):
            return
        if self.events:
            self.events.emit("in", "server", self.session_id, direction="c2s",
                             user=self.user, opcode=PONG, payload=ping_id.encode())
        for action in self.core.pong(ping_id, time.monotonic()):
            self._do(action)

    # -- closing -------------------------------------------------------------------------------

    async def close(self, code: int, reason: str, cause: CloseCause | None = None, *,
                    drain: float = 1.0) -> None:
        """Send what is queued (up to ``drain`` seconds), then close with ``code``."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self.core.close(code, reason, cause or CloseCause.DISCONNECTED)
        if not self.outbox.closed:
            await self.outbox.drain(drain)
        try:
            # A peer that stopped reading never lets the close frame out: give up on it.
            await asyncio.wait_for(self.ws.close(code, reason), self.options.close_timeout)
        except TimeoutError:
            wsinternals.abort(self.ws)

    def close_soon(self, code: int, reason: str, cause: CloseCause | None) -> None:
        """Start closing in the background (once); for callers that must not wait."""
        action = self.core.close(code, reason, cause or CloseCause.DISCONNECTED)
        if action is not None:
            self._close_in_background(code, reason, action.cause)

    def _close_in_background(self, code: int, reason: str, cause: CloseCause) -> None:
        if self._closing is None:
            if self.close_code is None:
                self.close_code, self.close_reason = code, reason
            self._closing = asyncio.ensure_future(self.close(code, reason, cause, drain=0.0))

    def _overflowed(self, limit: int) -> None:
        logger.warning("session %s: slow consumer, more than %d bytes queued; dropping it",
                       self.session_id, limit)
        self.close_soon(CloseCode.SLOW_CONSUMER, f"slow consumer: over {limit} bytes queued",
                        CloseCause.SLOW_CONSUMER)

    async def finish(self) -> None:
        """After the receive loop ends: stop the outbox and any ping or close under way."""
        self.core.closed()
        await self.outbox.aclose()
        for task in list(self._pings):
            task.cancel()
        if self._closing is not None and not self._closing.done():
            wsinternals.abort(self.ws)
            await asyncio.wait([self._closing])

    @property
    def close_cause(self) -> CloseCause | None:
        """Why this server closed the connection, or None if it did not."""
        return self.core.close_cause

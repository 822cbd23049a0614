"""One WebSocket on the server: its receive loop, heartbeat, rate limits and outbox.

The receive loop validates every frame with the protocol core and answers control
messages at once; chats go to the session's worker (see :mod:`nbstream.server.live`),
so pings, pongs and errors are handled while a reply streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection

from nbstream.events import EventStream
from nbstream.protocol import (
    CloseCode,
    ErrorCode,
    Heartbeat,
    Message,
    MessageType,
    StreamError,
    TokenBucket,
    encode,
    parse_client_frame,
)
from nbstream.server.outbox import Outbox

if TYPE_CHECKING:
    from nbstream.server.live import LiveSession
    from nbstream.server.options import ServerOptions

logger = logging.getLogger(__name__)


class Connection:
    """The server side of one WebSocket, attached to a :class:`LiveSession`."""

    def __init__(self, ws: ServerConnection, live: LiveSession, options: ServerOptions,
                 events: EventStream, *, user_bucket: TokenBucket | None,
                 on_batch: Callable[[int], None] | None = None) -> None:
        now = time.monotonic()
        self.ws = ws
        self.live = live
        self.options = options
        self.events = events
        self.heartbeat = Heartbeat(options.heartbeat_interval, options.heartbeat_timeout, now)
        self.bucket = (
            TokenBucket(options.rate_limit, options.burst, now) if options.rate_limit else None
        )
        self.user_bucket = user_bucket
        self.outbox = Outbox(ws, max_bytes=options.max_queue_bytes,
                             batch_max_size=options.batch_max_size,
                             batch_max_wait=options.batch_max_wait,
                             on_overflow=self._overflowed, on_batch=on_batch)
        self.close_code: int | None = None
        self.close_reason: str = ""
        self._closing: asyncio.Task[None] | None = None

    @property
    def session_id(self) -> str:
        return self.live.session.id

    # -- outgoing control messages (not part of the session's stream) -----------------------

    def send_control(self, message: Message) -> None:
        """Queue a ping, pong, welcome or shutdown notice; never waits."""
        encoded = encode(message)
        self.live.session.record_control_out(len(encoded))
        if self.events:
            self.events.emit("out", "server", self.session_id, direction="s2c",
                             message=message, size=len(encoded), user=self.live.session.user)
        self.outbox.put(encoded, urgent=True)

    def queue_frames(self, frames: list[bytes]) -> None:
        """Queue already-encoded stream messages (a resume's replay), in order."""
        for frame in frames:
            self.outbox.put(frame)
        self.outbox.flush()

    # -- closing -----------------------------------------------------------------------------

    async def close(self, code: int, reason: str, *, drain: float = 1.0) -> None:
        """Send what is queued (up to ``drain`` seconds), then close with ``code``."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        if not self.outbox.overflowed:
            await self.outbox.drain(drain)
        try:
            # A peer that stopped reading never lets the close frame out: give up on it.
            await asyncio.wait_for(self.ws.close(code, reason), self.options.close_timeout)
        except TimeoutError:
            self.ws.transport.abort()

    def close_soon(self, code: int, reason: str) -> None:
        """Start closing in the background (once); for callers that must not wait."""
        if self._closing is None:
            self._closing = asyncio.create_task(self.close(code, reason, drain=0.0))

    def _overflowed(self, limit: int) -> None:
        logger.warning("session %s: slow consumer, more than %d bytes queued; dropping it",
                       self.session_id, limit, extra=self.live.session.log_fields)
        self.close_soon(CloseCode.SLOW_CONSUMER, f"slow consumer: over {limit} bytes queued")

    # -- incoming ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Read frames until the connection closes."""
        async for frame in self.ws:
            await self._on_frame(frame)

    async def _on_frame(self, frame: str | bytes) -> None:
        now = time.monotonic()
        live = self.live
        live.session.record_in(len(frame))
        self.heartbeat.seen(now)
        parsed = parse_client_frame(frame)
        if self.events:
            detail: dict[str, Any] | None = None
            if not isinstance(parsed, Message):
                detail = {"raw": frame[:200], "error": parsed.to_dict()}
            self.events.emit("in", "server", live.session.id, direction="c2s",
                             message=parsed if isinstance(parsed, Message) else None,
                             size=len(frame), user=live.session.user, detail=detail)
        if isinstance(parsed, StreamError):
            await live.send_error(parsed)
            return
        message = parsed
        if message.type == MessageType.PONG:
            ping_id = message.data.get("ping_id") if isinstance(message.data, dict) else None
            rtt = self.heartbeat.pong(ping_id, now)
            if rtt is not None and self.events:
                self.events.emit("heartbeat", "server", live.session.id,
                                 user=live.session.user, detail={"rtt": rtt})
            return
        limited = self._rate_limited(now, message)
        if limited is not None:
            await live.send_error(limited)
            return
        if message.type == MessageType.PING:
            self.send_control(Message(MessageType.PONG, {"ping_id": message.id}))
            return
        if message.type == MessageType.AUTH:
            await live.send_error(StreamError(
                ErrorCode.INVALID_MESSAGE, "already authenticated",
                details={"reply_to": message.id}))
            return
        refused = live.accept_chat(message)
        if refused is not None:
            await live.send_error(refused)

    def _rate_limited(self, now: float, message: Message) -> StreamError | None:
        for bucket, scope in ((self.bucket, "connection"), (self.user_bucket, "user")):
            if bucket is None:
                continue
            wait = bucket.take(now)
            if wait > 0:
                return StreamError(
                    ErrorCode.RATE_LIMITED,
                    f"more than {bucket.rate:g} messages/s on this {scope}",
                    details={"retry_after": round(wait, 4), "reply_to": message.id,
                             "scope": scope},
                )
        return None

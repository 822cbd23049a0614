"""One client connection on the server: receive loop, chat worker, outgoing path.

The receive loop validates every frame with the protocol core and answers control
messages at once; chats go through a bounded queue to one worker task per
connection, so heartbeats are read while a long stream runs and a connection's
replies keep their order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from nbstream.events import EventStream
from nbstream.handlers import Handler, as_message
from nbstream.protocol import (
    Batcher,
    ErrorCode,
    Heartbeat,
    Message,
    MessageType,
    Session,
    StreamError,
    TokenBucket,
    encode,
    encode_batch,
    parse_client_frame,
)

if TYPE_CHECKING:
    from nbstream.server.options import ServerOptions

logger = logging.getLogger(__name__)

_FLUSH_NOW = frozenset({
    MessageType.END, MessageType.ERROR, MessageType.PING, MessageType.PONG,
    MessageType.SERVER_SHUTDOWN, MessageType.WELCOME,
})
"""Stream boundaries and control messages: they take the pending batch out at once."""


class Connection:
    """The server side of one WebSocket: its session, limits and outgoing path."""

    def __init__(
        self,
        ws: ServerConnection,
        session: Session,
        handler: Handler,
        options: ServerOptions,
        events: EventStream,
        *,
        welcome: bool,
    ) -> None:
        now = time.monotonic()
        self.ws = ws
        self.session = session
        self.handler = handler
        self.options = options
        self.events = events
        self.welcome = welcome
        self.heartbeat = Heartbeat(options.heartbeat_interval, options.heartbeat_timeout, now)
        self.bucket = (
            TokenBucket(options.rate_limit, options.burst, now) if options.rate_limit else None
        )
        self.batcher = (
            Batcher(options.batch_max_size, options.batch_max_wait) if options.batching else None
        )
        self._flush_timer: asyncio.TimerHandle | None = None
        self._chats: asyncio.Queue[Message] = asyncio.Queue(options.max_pending_chats)
        self._worker: asyncio.Task[None] | None = None
        self.streaming: Message | None = None
        """The chat whose reply is streaming now, if any."""
        self.draining = False
        """Set by a graceful shutdown: no new chats are taken."""
        self.close_code: int | None = None
        self.close_reason: str = ""

    # -- outgoing ---------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Send one message (or add it to the pending batch); keeps it in the history.

        Raises:
            websockets.exceptions.ConnectionClosed: if the connection is gone.
        """
        encoded = encode(message)
        self.session.record_out(encoded)
        if self.events:
            self.events.emit("out", "server", self.session.id, direction="s2c",
                             message=message, size=len(encoded), user=self.session.user)
        if self.batcher is None:
            await self.ws.send(encoded, text=True)
            return
        full = self.batcher.add(encoded, time.monotonic())
        if full is not None:
            await self._send_batch(full)
        elif message.type in _FLUSH_NOW:
            await self.flush()
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(
                self.options.batch_max_wait, self._flush_later
            )

    def _flush_later(self) -> None:
        self._flush_timer = None
        if self.batcher:
            task = asyncio.ensure_future(self.flush())
            task.add_done_callback(_ignore_closed)

    async def flush(self) -> None:
        """Send whatever the batcher holds, now."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self.batcher is not None and len(self.batcher):
            await self._send_batch(self.batcher.drain())

    async def _send_batch(self, items: list[bytes]) -> None:
        frame = items[0] if len(items) == 1 else encode_batch(items)
        await self.ws.send(frame, text=True)

    async def send_error(self, error: StreamError) -> None:
        """Send an ``error`` envelope; ignores a connection that is already gone."""
        try:
            await self.send(Message(MessageType.ERROR, error.to_dict()))
        except ConnectionClosed:
            pass

    async def close(self, code: int, reason: str) -> None:
        """Flush pending batches, then close with ``code`` and ``reason``."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        try:
            await self.flush()
        except ConnectionClosed:
            pass
        await self.ws.close(code, reason)

    # -- incoming ---------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it closes; never raises on peer misbehaviour."""
        if self.welcome:
            await self.send(Message(MessageType.WELCOME, {
                "session_id": self.session.id,
                "user": self.session.user,
                "heartbeat_interval": self.options.heartbeat_interval,
                "heartbeat_timeout": self.options.heartbeat_timeout,
                "max_message_bytes": self.options.max_message_bytes,
                "batching": self.options.batching,
            }))
        self._worker = asyncio.create_task(self._run_chats(), name=f"chats-{self.session.id}")
        try:
            async for frame in self.ws:
                await self._on_frame(frame)
        finally:
            await self.stop_worker()

    async def _on_frame(self, frame: str | bytes) -> None:
        now = time.monotonic()
        self.session.record_in(len(frame))
        self.heartbeat.seen(now)
        parsed = parse_client_frame(frame)
        if self.events:
            self.events.emit("in", "server", self.session.id, direction="c2s",
                             message=parsed if isinstance(parsed, Message) else None,
                             size=len(frame), user=self.session.user,
                             detail=None if isinstance(parsed, Message) else {"raw": frame[:200]})
        if isinstance(parsed, StreamError):
            await self.send_error(parsed)
            return
        message = parsed
        if message.type == MessageType.PONG:
            ping_id = message.data.get("ping_id") if isinstance(message.data, dict) else None
            rtt = self.heartbeat.pong(ping_id, now)
            if rtt is not None and self.events:
                self.events.emit("heartbeat", "server", self.session.id,
                                 user=self.session.user, detail={"rtt": rtt})
            return
        if self.bucket is not None:
            wait = self.bucket.take(now)
            if wait > 0:
                await self.send_error(StreamError(
                    ErrorCode.RATE_LIMITED,
                    f"more than {self.options.rate_limit:g} messages/s on this connection",
                    details={"retry_after": round(wait, 4), "reply_to": message.id},
                ))
                return
        if message.type == MessageType.PING:
            await self.send(Message(MessageType.PONG, {"ping_id": message.id}))
            return
        await self._accept_chat(message)

    async def _accept_chat(self, message: Message) -> None:
        if self.draining:
            await self.send_error(StreamError(
                ErrorCode.SHUTTING_DOWN, details={"reply_to": message.id}))
            return
        exhausted = self.session.start_chat()
        if exhausted is not None:
            exhausted.details["reply_to"] = message.id
            await self.send_error(exhausted)
            return
        try:
            self._chats.put_nowait(message)
        except asyncio.QueueFull:
            self.session.chats -= 1
            await self.send_error(StreamError(
                ErrorCode.RATE_LIMITED,
                f"{self.options.max_pending_chats} chats are already waiting on this connection",
                details={"retry_after": 0.1, "reply_to": message.id},
            ))

    # -- the chat worker -----------------------------------------------------------

    async def _run_chats(self) -> None:
        while True:
            message = await self._chats.get()
            self.streaming = message
            try:
                await self._stream_reply(message)
            except ConnectionClosed:
                return
            finally:
                self.streaming = None
                self._chats.task_done()

    async def _stream_reply(self, message: Message) -> None:
        try:
            async for item in self.handler(message, self.session):
                reply = as_message(item)
                await self.send(reply)
                if reply.type == MessageType.END:
                    return
            await self.send(Message(MessageType.END, {"reply_to": message.id}))
        except (ConnectionClosed, asyncio.CancelledError):
            raise
        except Exception:
            logger.exception("handler failed on chat %s of session %s",
                             message.id, self.session.id)
            error = StreamError(ErrorCode.INTERNAL_ERROR, details={"reply_to": message.id})
            await self.send_error(error)
            await self.close(error.close_code or 1011, "internal error")

    @property
    def idle(self) -> bool:
        """True when no chat is streaming or waiting."""
        return self.streaming is None and self._chats.empty()

    async def wait_idle(self) -> None:
        """Return once every accepted chat has been answered."""
        await self._chats.join()

    async def stop_worker(self) -> None:
        """Cancel the chat worker and wait for it to finish."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            try:
                await worker
            except (asyncio.CancelledError, ConnectionClosed):
                pass
            except Exception:
                logger.exception("chat worker of session %s failed", self.session.id)


def _ignore_closed(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and isinstance(task.exception(), ConnectionClosed):
        return
    if not task.cancelled() and task.exception() is not None:
        logger.error("flushing a batch failed", exc_info=task.exception())

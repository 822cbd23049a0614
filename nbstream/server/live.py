"""A session on the server: its chat worker and its stream, with or without a connection.

The session outlives its connection. When a client vanishes, the worker goes on
answering the chat it was answering; the replies are kept in the session's bounded
history, and a client that comes back within ``session_ttl`` gets them replayed. A
client that closes normally ends its session at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from nbstream.backplane import Backplane
from nbstream.events import EventStream
from nbstream.handlers import Handler, as_message
from nbstream.protocol import (
    ErrorCode,
    Message,
    MessageType,
    Session,
    StreamError,
    encode,
)
from nbstream.server import eager

if TYPE_CHECKING:
    from nbstream.server.connection import Connection
    from nbstream.server.options import ServerOptions

logger = logging.getLogger(__name__)

_URGENT = frozenset({MessageType.END, MessageType.ERROR})
"""Stream boundaries: they take a pending batch out at once."""


class LiveSession:
    """A session's worker and stream; :attr:`connection` is its current connection, if any."""

    def __init__(self, session: Session, handler: Handler, options: ServerOptions,
                 events: EventStream, backplane: Backplane) -> None:
        self.session = session
        self.backplane = backplane
        self.handler = handler
        self.options = options
        self.events = events
        self.connection: Connection | None = None
        self.detached_at: float | None = None
        """When the last connection went away (monotonic), or None while attached."""
        self.streaming: Message | None = None
        """The chat whose reply is streaming now, if any."""
        self.draining = False
        """Set by a graceful shutdown: no new chats are taken."""
        self._chats: asyncio.Queue[Message | _Started] = asyncio.Queue(options.max_pending_chats)
        self._waiting = False
        """True while the worker waits for the next chat (then a chat may start eagerly)."""
        self._worker = asyncio.create_task(self._run_chats(), name=f"chats-{session.id}")

    # -- the stream ------------------------------------------------------------------------

    def _record(self, message: Message) -> bytes:
        """Give ``message`` its position id, keep it in the history, return its frame."""
        session = self.session
        message = msgspec.structs.replace(message, id=session.next_id())
        encoded = encode(message)
        offset = session.record_out(encoded)
        self.backplane.record(session.id, session.user, session.epoch, offset, encoded)
        if self.events:
            self.events.emit("out", "server", session.id, direction="s2c", message=message,
                             size=len(encoded), user=session.user)
        return encoded

    async def send(self, message: Message) -> None:
        """Add ``message`` to the session's stream and send it if a connection is attached."""
        encoded = self._record(message)
        conn = self.connection
        if conn is not None:
            await conn.outbox.send(encoded, urgent=message.type in _URGENT)

    def push(self, message: Message) -> bool:
        """Like :meth:`send` but never waits (broadcasts); True if a connection got it."""
        encoded = self._record(message)
        conn = self.connection
        if conn is None or conn.outbox.overflowed:
            return False
        conn.outbox.put(encoded, urgent=True)
        return True

    async def send_error(self, error: StreamError) -> None:
        """Send an ``error`` envelope in the session's stream."""
        await self.send(Message(MessageType.ERROR, error.to_dict()))

    # -- chats ---------------------------------------------------------------------------------

    def accept_chat(self, message: Message) -> StreamError | None:
        """Queue a chat for the worker, or return the error that refuses it.

        A chat whose id this session has seen recently is a client's resend after a
        reconnect: it is dropped (its reply is in the history) and None is returned.
        """
        if not self.session.client_ids.add(message.id):
            logger.debug("dropping duplicate chat %s in session %s", message.id,
                         self.session.id, extra=self.session.log_fields)
            return None
        if self.draining:
            return StreamError(ErrorCode.SHUTTING_DOWN, details={"reply_to": message.id})
        exhausted = self.session.start_chat()
        if exhausted is not None:
            exhausted.details["reply_to"] = message.id
            return exhausted
        if self._waiting and eager.AVAILABLE and self._chats.empty():
            self._start_eagerly(message)
            return None
        try:
            self._chats.put_nowait(message)
        except asyncio.QueueFull:
            self.session.chats -= 1
            return StreamError(
                ErrorCode.RATE_LIMITED,
                f"{self.options.max_pending_chats} chats are already waiting in this session",
                details={"retry_after": 0.1, "reply_to": message.id},
            )
        return None

    def _start_eagerly(self, message: Message) -> None:
        """Stream the reply as the worker, from here, until it first waits (see eager)."""
        self.streaming = message
        coro = self._stream_reply(message)
        waiting_on = eager.start_as(self._worker, coro)
        if waiting_on is None:
            self.streaming = None
        else:
            self._chats.put_nowait(_Started(coro, waiting_on))

    async def _run_chats(self) -> None:
        while True:
            self._waiting = True
            try:
                item = await self._chats.get()
            finally:
                self._waiting = False
            try:
                if isinstance(item, _Started):
                    await eager.resume(item.coro, item.waiting_on)
                else:
                    self.streaming = item
                    await self._stream_reply(item)
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
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("handler failed on chat %s of session %s",
                             message.id, self.session.id, extra=self.session.log_fields)
            error = StreamError(ErrorCode.INTERNAL_ERROR, details={"reply_to": message.id})
            await self.send_error(error)
            if self.connection is not None:
                await self.connection.close(error.close_code or 1011, "internal error")

    @property
    def idle(self) -> bool:
        """True when no chat is streaming or waiting."""
        return self.streaming is None and self._chats.empty()

    async def wait_idle(self) -> None:
        """Return once every accepted chat has been answered."""
        await self._chats.join()

    async def stop(self) -> None:
        """Cancel the worker (a stream in flight is cut) and wait for it."""
        if not self._worker.done():
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass


class _Started(NamedTuple):
    """A reply that started eagerly and now waits on ``waiting_on``; the worker finishes it."""

    coro: Coroutine[Any, Any, None]
    waiting_on: Any

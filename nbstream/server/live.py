"""A session on the server: its stream of outgoing messages and what answers requests,
with or without a connection.

The session outlives its connection. When a client vanishes, the reply under way
(or the conversation handler) goes on; what it sends is kept in the session's bounded
history, and a client that comes back within ``session_ttl`` gets it replayed. A
client that closes normally ends its session at once.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec

from nbstream import tasks
from nbstream.backplane import Backplane
from nbstream.events import BINARY, TEXT, EventStream
from nbstream.handlers import ResolvedHandler
from nbstream.protocol import CloseCode, ErrorCode, Message, MessageType, Session, StreamError
from nbstream.protocol.closing import CloseCause
from nbstream.server.connection import Connection
from nbstream.server.conversation import Conversation
from nbstream.server.options import ServerOptions
from nbstream.server.outbox import Outbox
from nbstream.server.replies import ReplyQueue
from nbstream.wire import Encoded, WireProtocol

logger = logging.getLogger(__name__)

_URGENT = frozenset({MessageType.END, MessageType.ERROR})
"""Stream boundaries: they take a pending batch out at once."""


class LiveSession:
    """A session's stream and handler; :attr:`connection` is its connection, if any."""

    def __init__(self, session: Session, handler: ResolvedHandler, protocol: WireProtocol,
                 options: ServerOptions, events: EventStream, backplane: Backplane) -> None:
        self.session = session
        self.handler = handler
        self.protocol = protocol
        self.options = options
        self.events = events
        self.backplane = backplane
        self.connection: Connection | None = None
        self.detached_at: float | None = None
        """When the last connection went away (monotonic), or None while attached."""
        self.draining = False
        """Set by a graceful shutdown: no new requests are taken."""
        self.replies: ReplyQueue | None = None
        self.conversation: Conversation | None = None
        self._app: asyncio.Task[None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        if handler.reply is not None:
            self.replies = ReplyQueue(self._stream_reply, options.max_pending_chats,
                                      f"reply-{session.id}")
        else:
            self.conversation = Conversation(session, self.send, protocol.to_message,
                                             options.max_pending_chats)

    def start(self) -> None:
        """Start a conversation handler (reply handlers start with each request)."""
        if self.conversation is not None and self._app is None:
            self._app = tasks.start(self._run_conversation(),
                                    name=f"conversation-{self.session.id}")

    # -- the stream ------------------------------------------------------------------------

    def _record(self, message: Message) -> Encoded:
        """Give ``message`` its position (resumable protocols), keep it, return its frame."""
        session, protocol = self.session, self.protocol
        if protocol.resumable and (message.type != "binary" or protocol.in_stream(message)):
            message = msgspec.structs.replace(message, id=session.next_id())
            encoded = protocol.encode(message)
            offset = session.record_out(encoded.data)
            self.backplane.record(session.id, session.user, session.epoch, offset,
                                  encoded.data)
        else:
            encoded = protocol.encode(message)
            session.count_out(len(encoded.data))
        if self.events:
            data = encoded.data
            self.events.emit("out", "server", session.id, direction="s2c", message=message,
                             size=len(data), user=session.user,
                             opcode=TEXT if encoded.text else BINARY,
                             payload=data.decode(errors="replace") if encoded.text else data)
        return encoded

    async def send(self, message: Message) -> None:
        """Add ``message`` to the stream and send it; waits while the client lags."""
        crowded = self._put(message)
        if crowded is not None:
            await crowded.room()

    def _put(self, message: Message) -> Outbox | None:
        """Record and queue ``message``; the outbox to wait for when the client lags."""
        encoded = self._record(message)
        conn = self.connection
        if conn is None:
            return None
        outbox = conn.outbox
        outbox.put(encoded, urgent=message.type in _URGENT)
        return outbox if outbox.crowded else None

    def push(self, message: Message) -> bool:
        """Like :meth:`send` but never waits (broadcasts); True if a connection got it."""
        encoded = self._record(message)
        conn = self.connection
        if conn is None or conn.outbox.closed:
            return False
        conn.outbox.put(encoded, urgent=True)
        return True

    def report(self, error: StreamError) -> None:
        """Report ``error`` in the stream, never waiting (protocols without in-band errors
        only log it)."""
        message = self.protocol.error_message(error)
        if message is None:
            logger.info("session %s: %s", self.session.id, error, extra=self.session.log_fields)
            return
        self.push(message)

    # -- requests ------------------------------------------------------------------------

    def accept(self, request: Message) -> StreamError | None:
        """Take a request for the handler, or return the error that refuses it.

        A request whose id this session has seen recently is a client's resend after
        a reconnect: it is dropped (its reply is in the history) and None is returned.
        """
        session = self.session
        if self.protocol.resumable and not session.client_ids.add(request.id):
            logger.debug("dropping duplicate request %s in session %s", request.id,
                         session.id, extra=session.log_fields)
            return None
        exhausted = session.start_chat()
        if exhausted is not None:
            exhausted.details["reply_to"] = request.id
            return exhausted
        if self.replies is not None:
            taken = self.replies.submit(request)
        else:
            assert self.conversation is not None
            taken = self.conversation.deliver(request)
        if taken:
            return None
        session.chats -= 1
        return StreamError(
            ErrorCode.RATE_LIMITED,
            f"{self.options.max_pending_chats} requests are already waiting in this session",
            details={"retry_after": 0.1, "reply_to": request.id},
        )

    async def _stream_reply(self, request: Message) -> None:
        reply = self.handler.reply
        assert reply is not None
        protocol = self.protocol
        items = reply(request, self.session)
        ended = False  # the handler sent an ``end`` of its own
        try:
            try:
                async for item in items:
                    message = protocol.to_message(item)
                    crowded = self._put(message)  # no coroutine per message unless it waits
                    if crowded is not None:
                        await crowded.room()
                    if message.type == MessageType.END and protocol.ends_replies:
                        ended = True
                        break
            except BaseException:
                await items.aclose()  # in this task, so its finally blocks run in order
                raise
            if ended:
                await items.aclose()
                return
            end = protocol.end_of_reply(request)
            if end is not None:
                await self.send(end)
            elif self.connection is not None:  # the reply is whole: out now, as an end goes
                self.connection.outbox.flush()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("handler failed on request %s of session %s",
                             request.id, self.session.id, extra=self.session.log_fields)
            self._failed(StreamError(ErrorCode.INTERNAL_ERROR, details={"reply_to": request.id}))
        finally:
            assert self.replies is not None
            self.replies.finished()

    async def _run_conversation(self) -> None:
        app, conversation = self.handler.conversation, self.conversation
        assert app is not None and conversation is not None
        try:
            await app(conversation)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("conversation handler failed in session %s", self.session.id,
                             extra=self.session.log_fields)
            self._failed(StreamError(ErrorCode.INTERNAL_ERROR))
            return
        conn = self.connection
        if conn is not None and not conversation.ended:
            conn.close_soon(CloseCode.NORMAL_CLOSURE, "conversation ended", None)

    def _failed(self, error: StreamError) -> None:
        self.report(error)
        if self.connection is not None:
            self.connection.close_soon(error.close_code or CloseCode.INTERNAL_ERROR,
                                       "internal error", CloseCause.HANDLER_FAILED)

    # -- life ------------------------------------------------------------------------------

    @property
    def streaming(self) -> Message | None:
        """The request whose reply is streaming now, if any."""
        return self.replies.current if self.replies is not None else None

    @property
    def idle(self) -> bool:
        """True when nothing is being answered (a conversation: its handler returned)."""
        if self.replies is not None:
            return self.replies.idle
        return self._app is None or self._app.done()

    async def wait_idle(self) -> None:
        """Return once everything accepted is answered (a conversation: it returned)."""
        if self.replies is not None:
            await self.replies.wait_idle()
        elif self._app is not None:
            await asyncio.wait([self._app])

    def ending(self, code: int, reason: str) -> None:
        """Tell a conversation handler the session is ending (its ``receive`` raises)."""
        if self.conversation is not None:
            self.conversation.end(code, reason)

    async def stop(self) -> None:
        """Cut what is being answered and wait until it has stopped."""
        if self.replies is not None:
            await self.replies.stop()
        if self.conversation is not None:
            self.conversation.end(CloseCode.GOING_AWAY, "session ended")
        app = self._app
        if app is not None and not app.done():
            app.cancel()
            await asyncio.wait([app])

    def stop_soon(self) -> None:
        """:meth:`stop` in the background, for callers that must not wait."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self.stop())

    def __repr__(self) -> str:
        state = "attached" if self.connection is not None else "detached"
        return f"<LiveSession {self.session.id} {state}>"


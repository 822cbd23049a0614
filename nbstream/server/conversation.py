"""Session-level handlers: ``async def handler(conversation)`` runs once per session.

Where a reply handler answers one request at a time, a conversation handler owns the
whole session: it reads every message the client sends with
:meth:`Conversation.receive` and sends whenever it likes with
:meth:`Conversation.send`, both at once (a Strands ``BidiAgent`` talks like this).
Its sends go into the session's stream like replies do: kept in the history,
replayed when a dropped client resumes, shown in views.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from nbstream.protocol import Message, Session, StreamClosed

Send = Callable[[Message], Awaitable[None]]
"""Puts a message into the session's stream (``LiveSession.send``)."""


class Conversation:
    """A session seen by a conversation handler. Read with :meth:`receive`, write with
    :meth:`send`; :attr:`session` has the id, user and your ``state`` dict."""

    def __init__(self, session: Session, send: Send, to_message: Callable[[Any], Message],
                 max_waiting: int) -> None:
        self.session = session
        self._send = send
        self._to_message = to_message
        self.max_waiting = max_waiting
        self._inbox: deque[Message] = deque()
        self._arrived = asyncio.Event()
        self._ended: StreamClosed | None = None

    async def receive(self) -> Message:
        """The next message from the client (waits across reconnects).

        Raises:
            StreamClosed: once the session is over, with the close code and reason (the
                client closed it: 1000; the server shuts down: 1001; its resume window
                ran out): finish up and return.
        """
        while not self._inbox:
            if self._ended is not None:
                raise self._ended
            self._arrived.clear()
            await self._arrived.wait()
        return self._inbox.popleft()

    async def send(self, item: Message | dict[str, Any] | str | bytes) -> None:
        """Send ``item`` into the session's stream; waits while the client lags."""
        await self._send(self._to_message(item))

    def deliver(self, message: Message) -> bool:
        """A client message for the handler; False when too many already wait."""
        if len(self._inbox) >= self.max_waiting:
            return False
        self._inbox.append(message)
        self._arrived.set()
        return True

    def end(self, code: int, reason: str) -> None:
        """The session is over: what :meth:`receive` raises once the inbox is empty."""
        if self._ended is None:
            self._ended = StreamClosed(code, reason)
            self._arrived.set()

    @property
    def ended(self) -> bool:
        """True once :meth:`end` was called."""
        return self._ended is not None


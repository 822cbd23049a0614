"""A session's replies, one after the other, each in a task of its own.

A request that arrives while the session is idle starts its reply at once
(:func:`nbstream.tasks.start`: eagerly on Python 3.12+); one that arrives while a
reply streams waits in a bounded queue and starts when the reply before it ends. A
reply's task is its own: context variables, ``asyncio.timeout`` and cancellation
behave as in any task, and the connection's receive loop never runs handler code.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from nbstream import tasks
from nbstream.protocol import Message

Reply = Callable[[Message], Coroutine[Any, Any, None]]
"""Streams the reply to one request and calls :meth:`ReplyQueue.finished` at its end,
whatever happens (``LiveSession._stream_reply``)."""


class ReplyQueue:
    """Runs ``reply(request)`` for each request in turn; at most ``max_waiting`` wait."""

    def __init__(self, reply: Reply, max_waiting: int, name: str) -> None:
        self._reply = reply
        self.max_waiting = max_waiting
        self._name = name
        self._waiting: deque[Message] = deque()
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.Future[None] | None = None
        self.current: Message | None = None
        """The request whose reply is streaming now, if any."""
        self.stopped = False

    def submit(self, request: Message) -> bool:
        """Start or queue the reply to ``request``; False when the queue is full."""
        if self.stopped:
            return True  # the session is ending: nothing will answer, nothing to refuse
        if self.current is None and not self._waiting:
            self._start(request)
            return True
        if len(self._waiting) >= self.max_waiting:
            return False
        self._waiting.append(request)
        return True

    def _start(self, request: Message) -> None:
        self.current = request
        task = tasks.start(self._reply(request), name=self._name)
        if not task.done():  # it waits (else it never waited, and is finished)
            self._task = task

    def finished(self) -> None:
        """The reply under way ended: start the next waiting one (no done-callback, no
        extra loop turn), or tell whoever waits that the session is idle."""
        self._task = None
        self.current = None
        if self._waiting and not self.stopped:
            self._start(self._waiting.popleft())
        elif self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    @property
    def idle(self) -> bool:
        """True when no reply streams and none waits."""
        return self.current is None and not self._waiting

    async def wait_idle(self) -> None:
        """Return once every accepted request has been answered."""
        if self.idle:
            return
        if self._idle is None or self._idle.done():
            self._idle = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._idle)

    async def stop(self) -> None:
        """Cancel the reply in flight, drop those waiting, and wait for the task to end."""
        self.stopped = True
        self._waiting.clear()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        if self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

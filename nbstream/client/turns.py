"""Whose turn it is to read the socket: a receive, or the idle reader that answers
heartbeats between notebook cells (a mixin of :class:`nbstream.client.Client`)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from nbstream.protocol import Message, StreamClosed

IDLE_CHECK = 0.2
"""Seconds without a receive after which a background reader answers pings."""

MAX_PENDING = 10_000
"""Messages held for a client that does not read; beyond it reading pauses (backpressure)."""


class SocketTurns:
    """One reader at a time: receives take the socket, the idle reader steps aside."""

    _loop: asyncio.AbstractEventLoop
    _pending: deque[Message]
    _lock: asyncio.Lock
    _idle_reader: asyncio.Task[None] | None
    _receivers: int
    _last_read: float
    _closed: StreamClosed | None
    _closing: bool

    if TYPE_CHECKING:
        async def _read_frame(self) -> None: ...

    async def _read_while_idle(self) -> None:
        try:
            async with self._lock:
                while len(self._pending) < MAX_PENDING:
                    await self._read_frame()
        except (StreamClosed, asyncio.CancelledError):
            pass

    def _on_idle(self, now: float) -> float | None:
        """The watchdog's idle check: start the idle reader after a pause of IDLE_CHECK."""
        if self._closed is not None or self._closing:
            return None
        idle_for = now - self._last_read
        if (self._idle_reader is None and not self._receivers and not self._lock.locked()
                and idle_for >= IDLE_CHECK):
            self._idle_reader = asyncio.create_task(self._read_while_idle())
            idle_for = 0.0
        return now + max(0.01, IDLE_CHECK - idle_for)

    async def _stop_idle_reader(self) -> None:
        reader, self._idle_reader = self._idle_reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.wait([reader])

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

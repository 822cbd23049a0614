"""One connection's outgoing path: batching, a bounded queue, and slow-consumer detection.

Frames go straight to the socket while it keeps up. When the socket's write buffer
is full (the peer reads slower than we write), websockets' ``send`` waits; from then
on frames wait in a queue that one writer task drains. The queue is bounded in
bytes: past ``max_bytes`` the connection is a slow consumer and is dropped, so the
server's memory per connection stays below ``max_bytes`` plus websockets' write
buffer (``write_limit``, 32 KiB) plus one frame. Producers never wait for a slow
peer: :meth:`Outbox.put` returns at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from nbstream.protocol import Batcher, encode_batch

logger = logging.getLogger(__name__)


class Outbox:
    """The outgoing frames of one connection. Call :meth:`put`; never blocks."""

    def __init__(self, ws: ServerConnection, *, max_bytes: int, batch_max_size: int,
                 batch_max_wait: float, on_overflow: Callable[[int], None],
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.ws = ws
        self._on_batch = on_batch
        self.max_bytes = max_bytes
        self._on_overflow = on_overflow
        self._batcher = Batcher(batch_max_size, batch_max_wait) if batch_max_size > 1 else None
        self._timer: asyncio.TimerHandle | None = None
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.busy_since: float | None = None
        """When the socket stopped taking frames (monotonic), or None while it keeps up."""
        self.overflowed = False

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting for the socket (not counting websockets' own write buffer)."""
        return self._queued_bytes

    async def send(self, frame: bytes, *, urgent: bool = False) -> None:
        """Like :meth:`put`, for the session's own stream: it waits when the client lags.

        Writes to the socket directly when nothing is waiting (saving a task switch per
        message). When frames are queued beyond half of ``max_bytes``, it waits until
        the writer drains them: a fast handler is slowed to the client's pace instead
        of overflowing the queue. A client that stops reading altogether is caught by
        :meth:`stalled` and dropped, which releases the wait.
        """
        if self._batcher is None and not self._queue and self.busy_since is None:
            self.busy_since = time.monotonic()
            try:
                await self.ws.send(frame, text=True)
            except ConnectionClosed:
                return  # the receive loop sees the close and detaches the session
            finally:
                self.busy_since = None
            if self._queue:
                self._wake.set()
            return
        self.put(frame, urgent=urgent)
        if self._queued_bytes > self.max_bytes // 2 and not self.overflowed:
            self._room.clear()
            await self._room.wait()

    def put(self, frame: bytes, *, urgent: bool = False) -> None:
        """Queue one encoded message; ``urgent`` takes any pending batch out with it."""
        if self.overflowed:
            return
        if self._batcher is None:
            self._enqueue(frame)
            return
        full = self._batcher.add(frame, time.monotonic())
        if full is not None:
            self._enqueue(self._frame_of(full))
        elif urgent:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self._batcher.max_wait, self.flush)

    def flush(self) -> None:
        """Take the pending batch out now (at a stream boundary, before closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._batcher is not None and len(self._batcher):
            self._enqueue(self._frame_of(self._batcher.drain()))

    def _enqueue(self, frame: bytes) -> None:
        if self._queued_bytes + len(frame) > self.max_bytes and self._queue:
            self.overflowed = True
            self._queue.clear()
            self._queued_bytes = 0
            self._on_overflow(self.max_bytes)
            return
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        self._wake.set()

    async def _write(self) -> None:
        queue = self._queue
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while queue and self.busy_since is None:
                    frame = queue.popleft()
                    self._queued_bytes -= len(frame)
                    self.busy_since = time.monotonic()
                    await self.ws.send(frame, text=True)
                    self.busy_since = None
                    if self._queued_bytes <= self.max_bytes // 2:
                        self._room.set()
        except ConnectionClosed:
            pass
        finally:
            self._room.set()

    def stalled(self, now: float, limit: float) -> bool:
        """True when one frame has waited more than ``limit`` seconds for the socket."""
        return self.busy_since is not None and now - self.busy_since > limit

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for everything queued to reach the socket."""
        self.flush()
        deadline = time.monotonic() + timeout
        while (self._queue or self.busy_since is not None) and not self.overflowed:
            if time.monotonic() >= deadline or self._writer is None or self._writer.done():
                return False
            await asyncio.sleep(0.005)
        return True

    async def aclose(self) -> None:
        """Stop the writer task; queued frames are dropped, waiting producers released."""
        self._room.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        writer, self._writer = self._writer, None
        if writer is not None and not writer.done():
            writer.cancel()
            try:
                await writer
            except (asyncio.CancelledError, ConnectionClosed):
                pass

    def _frame_of(self, items: list[bytes]) -> bytes:
        if self._on_batch is not None:
            self._on_batch(len(items))
        return items[0] if len(items) == 1 else encode_batch(items)

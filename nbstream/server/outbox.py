"""One connection's outgoing path: coalesced writes, batching, a bounded queue, and
slow-consumer detection.

While the socket keeps up, frames go straight to it, coalesced: the frames produced
in one turn of the event loop (a reply's content and its ``end``, say) are written in
one system call (:func:`nbstream.wsinternals.write_now`). Each message is still its
own WebSocket frame. A stream boundary (``urgent``: ``end``, ``error``, control
messages) writes at once.

When the transport's buffer reaches websockets' ``write_limit`` (the peer reads
slower than we write), frames wait in a queue that one writer task drains through
websockets' ``send``, which waits for the socket. The queue is bounded in bytes: past
``max_bytes`` the connection is a slow consumer and is dropped, so the server's
memory per connection stays below ``max_bytes`` plus ``write_limit`` plus one frame.
:meth:`Outbox.put` never waits; :meth:`Outbox.room` lets a session's own stream wait
for the client to catch up, and returns at once once the outbox is closed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from websockets.asyncio.connection import Connection as WsConnection
from websockets.exceptions import ConnectionClosed

from nbstream import wsinternals
from nbstream.protocol import Batcher, encode_batch
from nbstream.wire import Encoded


class Outbox:
    """The outgoing frames of one connection. Call :meth:`put`; never blocks."""

    def __init__(self, ws: WsConnection, *, max_bytes: int, batch_max_size: int,
                 batch_max_wait: float, on_overflow: Callable[[int], None],
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.ws = ws
        self.max_bytes = max_bytes
        self._on_overflow = on_overflow
        self._on_batch = on_batch
        self._batcher = Batcher(batch_max_size, batch_max_wait) if batch_max_size > 1 else None
        self._timer: asyncio.TimerHandle | None = None
        self._queue: deque[Encoded] = deque()
        self._queued_bytes = 0
        self._corked: list[Encoded] = []
        """Frames of this turn of the loop, written together by :meth:`_uncork`."""
        self._corked_bytes = 0
        self._uncork_soon: asyncio.Handle | None = None
        self._write_limit = wsinternals.write_limit(ws)
        self._buffered = wsinternals.buffer_size_reader(ws)
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.busy_since: float | None = None
        """When the socket stopped taking frames (monotonic), or None while it keeps up."""
        self.overflowed = False
        self.closed = False
        """True once nothing more can be sent (closed, overflowed, or the writer ended)."""

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting for the socket (not counting websockets' own write buffer)."""
        return self._queued_bytes

    @property
    def crowded(self) -> bool:
        """True while more than half of ``max_bytes`` waits: :meth:`room` would wait."""
        return self._queued_bytes > self.max_bytes // 2 and not self.closed

    async def room(self) -> None:
        """Wait while more than half of ``max_bytes`` is queued (a fast stream slows to
        the client's pace); returns at once when the outbox is closed."""
        while self._queued_bytes > self.max_bytes // 2 and not self.closed:
            self._room.clear()
            await self._room.wait()

    def put(self, frame: Encoded, *, urgent: bool = False) -> None:
        """Queue one message; ``urgent`` takes any pending batch out with it."""
        if self.closed:
            return
        if self._batcher is None or not frame.text:
            self._enqueue(frame, urgent)
            return
        full = self._batcher.add(frame.data, time.monotonic())
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
            self._enqueue(self._frame_of(self._batcher.drain()), True)
        self._uncork()

    def _enqueue(self, frame: Encoded, urgent: bool = False) -> None:
        size = len(frame.data)
        if (not self._queue and self.busy_since is None and self._corked_bytes + size
                + self._buffered() <= self._write_limit):
            self._corked.append(frame)
            self._corked_bytes += size
            if urgent:
                self._uncork()
            elif self._uncork_soon is None:
                self._uncork_soon = asyncio.get_running_loop().call_soon(self._uncork)
            return
        self._uncork()  # what was corked goes first
        if self._queued_bytes + size > self.max_bytes and self._queue:
            self._overflow()
            return
        self._queue.append(frame)
        self._queued_bytes += size
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        self._wake.set()

    def _overflow(self) -> None:
        self.overflowed = True
        self._shut()
        self._on_overflow(self.max_bytes)

    def _uncork(self) -> None:
        """Write the corked frames to the transport in one piece."""
        if self._uncork_soon is not None:
            self._uncork_soon.cancel()
            self._uncork_soon = None
        frames = self._corked
        if not frames:
            return
        self._corked, self._corked_bytes = [], 0
        wsinternals.write_now(self.ws, frames)

    async def _write(self) -> None:
        queue = self._queue
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while queue and self.busy_since is None:
                    frame = queue.popleft()
                    self._queued_bytes -= len(frame.data)
                    self.busy_since = time.monotonic()
                    await self.ws.send(frame.data, text=frame.text)
                    self.busy_since = None
                    if self._queued_bytes <= self.max_bytes // 2:
                        self._room.set()
        except ConnectionClosed:
            self._shut()

    def _shut(self) -> None:
        """Nothing more goes out: drop what waits, release whoever waits for room."""
        self.closed = True
        self._queue.clear()
        self._queued_bytes = 0
        self._corked, self._corked_bytes = [], 0
        self._room.set()

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for everything queued to reach the socket."""
        self.flush()  # uncorks too
        deadline = time.monotonic() + timeout
        while (self._queue or self.busy_since is not None) and not self.closed:
            if time.monotonic() >= deadline or self._writer is None or self._writer.done():
                return False
            await asyncio.sleep(0.005)
        return True

    async def aclose(self) -> None:
        """Stop the writer task; queued frames are dropped, waiting producers released."""
        self._shut()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._uncork_soon is not None:
            self._uncork_soon.cancel()
            self._uncork_soon = None
        writer, self._writer = self._writer, None
        if writer is not None and not writer.done():
            writer.cancel()
            try:
                await writer
            except (asyncio.CancelledError, ConnectionClosed):
                pass

    def _frame_of(self, items: list[bytes]) -> Encoded:
        if self._on_batch is not None:
            self._on_batch(len(items))
        return Encoded(items[0] if len(items) == 1 else encode_batch(items), True)

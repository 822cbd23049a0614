"""One connection's outgoing path: coalesced writes, batching, a bounded queue, and
slow-consumer detection.

While the socket keeps up, frames go straight to it, coalesced: the frames produced
in one turn of the event loop (a reply's content and its ``end``, say) are framed by
websockets' Sans-I/O protocol and handed to the transport in one write, so one
system call instead of one per frame (the loopback send is the largest single cost
of a request/response round trip here). Each message is still its own WebSocket
frame: plain clients that read one message per frame see no difference. A stream
boundary (``urgent``: ``end``, ``error``, control messages) writes at once.

When the transport's buffer reaches websockets' ``write_limit`` (the peer reads
slower than we write), frames wait in a queue that one writer task drains through
websockets' ``send``, which waits for the socket. The queue is bounded in bytes: past
``max_bytes`` the connection is a slow consumer and is dropped, so the server's
memory per connection stays below ``max_bytes`` plus ``write_limit`` (32 KiB) plus
one frame. Producers never wait for a slow peer: :meth:`Outbox.put` returns at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

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
        self._corked: list[bytes] = []
        """Frames of this turn of the loop, written together by :meth:`_uncork`."""
        self._corked_bytes = 0
        self._uncork_soon: asyncio.Handle | None = None
        self._write_limit = ws.transport.get_write_buffer_limits()[1]
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

        When frames are queued beyond half of ``max_bytes``, it waits until the writer
        drains them: a fast handler is slowed to the client's pace instead of
        overflowing the queue. A client that stops reading altogether is caught by
        :meth:`stalled` and dropped, which releases the wait.
        """
        self.put(frame, urgent=urgent)
        if self._queued_bytes > self.max_bytes // 2 and not self.overflowed:
            self._room.clear()
            await self._room.wait()

    def put(self, frame: bytes, *, urgent: bool = False) -> None:
        """Queue one encoded message; ``urgent`` takes any pending batch out with it."""
        if self.overflowed:
            return
        if self._batcher is None:
            self._enqueue(frame, urgent)
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
            self._enqueue(self._frame_of(self._batcher.drain()), True)
        self._uncork()

    def _enqueue(self, frame: bytes, urgent: bool = False) -> None:
        if (not self._queue and self.busy_since is None and self._corked_bytes + len(frame)
                + self.ws.transport.get_write_buffer_size() <= self._write_limit):
            self._corked.append(frame)
            self._corked_bytes += len(frame)
            if urgent:
                self._uncork()
            elif self._uncork_soon is None:
                self._uncork_soon = asyncio.get_running_loop().call_soon(self._uncork)
            return
        self._uncork()  # what was corked goes first
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

    def _uncork(self) -> None:
        """Write the corked frames to the transport in one piece."""
        if self._uncork_soon is not None:
            self._uncork_soon.cancel()
            self._uncork_soon = None
        frames = self._corked
        if not frames:
            return
        self._corked, self._corked_bytes = [], 0
        ws = self.ws
        protocol = ws.protocol
        if protocol.state is not State.OPEN or ws.transport.is_closing():
            return  # the receive loop sees the close and detaches the session
        for frame in frames:
            protocol.send_text(frame)
        ws.transport.write(b"".join(protocol.data_to_send()))

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
        self.flush()  # uncorks too
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
        if self._uncork_soon is not None:
            self._uncork_soon.cancel()
            self._uncork_soon = None
        self._corked, self._corked_bytes = [], 0
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

"""A session's recent outgoing messages, bounded by count and by encoded bytes.

The seed's ``BoundedMessageHistory`` measures ``sys.getsizeof(str(message))`` (the
size of a Python string object, not of what goes on the wire) and lets its deque
drop the oldest entry on ``maxlen`` without taking its bytes off the total. Here the
size is ``len()`` of the encoded frame and every eviction adjusts the total, so both
bounds hold after every :meth:`BoundedHistory.add`, at O(1) amortised cost.

Entries carry increasing offsets so that a reconnecting client can ask for what it
missed (:meth:`BoundedHistory.since`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator


class BoundedHistory:
    """The last messages of a session, at most ``max_messages`` and ``max_bytes``.

    A message larger than ``max_bytes`` on its own is not kept; it empties the
    history instead, so that :meth:`since` reports the gap rather than skip it.
    """

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        if max_messages < 0 or max_bytes < 0:
            raise ValueError("history bounds must not be negative")
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._entries: deque[tuple[int, bytes]] = deque()
        self._bytes = 0
        self._next_offset = 0
        self.evicted = 0
        """How many messages were dropped to keep within the bounds."""

    def add(self, encoded: bytes) -> int:
        """Record one encoded message; returns its offset in the session."""
        offset = self._next_offset
        self._next_offset += 1
        size = len(encoded)
        if size > self.max_bytes or self.max_messages == 0:
            self.evicted += len(self._entries) + 1
            self._entries.clear()
            self._bytes = 0
            return offset
        self._entries.append((offset, encoded))
        self._bytes += size
        while len(self._entries) > self.max_messages or self._bytes > self.max_bytes:
            _, old = self._entries.popleft()
            self._bytes -= len(old)
            self.evicted += 1
        return offset

    def restore(self, entries: list[tuple[int, bytes]], next_offset: int) -> None:
        """Start from messages another process recorded (offsets ascending, contiguous).

        Keeps the newest entries that fit the bounds; the next :meth:`add` gets
        ``next_offset``.
        """
        self._entries.clear()
        self._bytes = 0
        self._next_offset = next_offset
        for offset, encoded in entries[-self.max_messages:] if self.max_messages else []:
            self._entries.append((offset, encoded))
            self._bytes += len(encoded)
        while self._entries and self._bytes > self.max_bytes:
            self._bytes -= len(self._entries.popleft()[1])

    @property
    def total_bytes(self) -> int:
        """Encoded bytes currently held."""
        return self._bytes

    @property
    def next_offset(self) -> int:
        """The offset the next message will get."""
        return self._next_offset

    @property
    def first_offset(self) -> int:
        """The offset of the oldest message still held (== next_offset when empty)."""
        return self._entries[0][0] if self._entries else self._next_offset

    def since(self, offset: int) -> list[bytes] | None:
        """Messages from ``offset`` on, or None if some of them were already evicted."""
        if offset < self.first_offset or offset > self._next_offset:
            return None
        skip = offset - self.first_offset
        return [encoded for _, encoded in list(self._entries)[skip:]]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[bytes]:
        return (encoded for _, encoded in self._entries)

"""Gathering outgoing messages into ``batch`` frames, by count and by age.

The seed's ``MessageBatcher`` strands messages: nothing flushes the last partial
batch when a stream ends or the connection closes. Here the caller drains at every
point where waiting would lose or delay data (``end``, close) and asks
:attr:`Batcher.deadline` when the oldest pending message must go out.
"""

from __future__ import annotations


class Batcher:
    """A pending batch of encoded messages. No I/O, no timers: pass ``now`` in.

    Call :meth:`add` for each outgoing message; send what it returns. When it
    returns None, arrange to call :meth:`drain` at :attr:`deadline`.
    """

    def __init__(self, max_size: int, max_wait: float) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        if max_wait < 0:
            raise ValueError(f"max_wait must not be negative, got {max_wait}")
        self.max_size = max_size
        self.max_wait = max_wait
        self._items: list[bytes] = []
        self._deadline: float | None = None

    def add(self, item: bytes, now: float) -> list[bytes] | None:
        """Queue one message; returns a full batch to send now, or None."""
        self._items.append(item)
        if len(self._items) >= self.max_size:
            return self.drain()
        if self._deadline is None:
            self._deadline = now + self.max_wait
        return None

    @property
    def deadline(self) -> float | None:
        """When the oldest pending message is due, or None if nothing is pending."""
        return self._deadline

    def due(self, now: float) -> bool:
        """True when pending messages have waited ``max_wait``."""
        return self._deadline is not None and now >= self._deadline

    def drain(self) -> list[bytes]:
        """Take every pending message, oldest first (possibly none)."""
        items, self._items, self._deadline = self._items, [], None
        return items

    def __len__(self) -> int:
        return len(self._items)

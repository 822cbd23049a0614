"""The rows a FlowView keeps: at most N, shared fairly between the types of row.

Keeping only the newest N rows lets the most frequent type push out every other one:
after a few minutes of heartbeats a FlowView would hold nothing but ``ping`` and
``pong``. :class:`KeptRows` instead drops the oldest row of whichever type holds the
most rows, so a rare type keeps its rows while a frequent one rolls over.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar


class Row(Protocol):
    """What :class:`KeptRows` needs of a row: its order and its type."""

    @property
    def seq(self) -> int: ...

    @property
    def type(self) -> str: ...


R = TypeVar("R", bound=Row)


class KeptRows(Generic[R]):
    """At most ``limit`` rows; when full, the oldest row of the largest type goes.

    Rows must be added in ``seq`` order. ``dropped`` counts the rows that went.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.dropped = 0
        """Rows added and dropped since, to make room."""
        self._by_type: dict[str, deque[R]] = {}
        self._count = 0

    def add(self, row: R) -> None:
        """Keep ``row``; drop the oldest row of the largest type if over the limit."""
        self._by_type.setdefault(row.type, deque()).append(row)
        self._count += 1
        if self._count > self.limit:
            self._drop_one()

    def _drop_one(self) -> None:
        # The largest type; among equals, the one whose oldest row is oldest.
        type, rows = max(self._by_type.items(), key=lambda item: (len(item[1]), -item[1][0].seq))
        rows.popleft()
        if not rows:
            del self._by_type[type]
        self._count -= 1
        self.dropped += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[R]:
        """Every kept row, oldest first."""
        return heapq.merge(*self._by_type.values(), key=lambda row: row.seq)

    def of_type(self, type: str) -> list[R]:
        """The kept rows of one type, oldest first."""
        return list(self._by_type.get(type, ()))

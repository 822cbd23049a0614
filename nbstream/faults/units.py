"""What flows through a fault proxy's pipes, and the timed queue every stage is built on.

A pipe carries one direction of one connection. Its message stages see
:class:`Unit` objects (a whole WebSocket message, one control frame, bytes the
proxy does not parse, a signal, or a note about a fault); its byte stages see
``bytes`` and :class:`Signal` values. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

Way = Literal["up", "down"]
"""``up``: client to server; ``down``: server to client (Toxiproxy's upstream and
downstream)."""


class Signal(enum.Enum):
    """The end of a byte stream, and how it ends."""

    EOF = "eof"
    """The sender finished (TCP FIN): passed on in order, then the receiver is half-closed."""
    CLOSE = "close"
    """A fault closes the connection: both sockets close after what was written (FIN)."""
    RESET = "reset"
    """A fault resets the connection: both sockets are aborted at once (TCP RST)."""


Item = bytes | Signal
"""What byte stages carry."""


class UnitKind(enum.Enum):
    """What a :class:`Unit` is."""

    MESSAGE = "message"
    """A text or binary message: one frame, or a first frame and its continuations."""
    CONTROL = "control"
    """One ping, pong or close frame."""
    RAW = "raw"
    """Bytes the proxy does not parse: the HTTP handshake, or a stream it gave up on."""
    SIGNAL = "signal"
    """The end of the stream (:class:`Signal`)."""
    NOTE = "note"
    """No bytes: a fault's report, kept in order with the messages around it."""


@dataclass(frozen=True, slots=True)
class FrameSpan:
    """Where one frame sits in a unit's ``raw`` bytes: its start and header length."""

    start: int
    header: int
    length: int
    """Payload bytes."""


@dataclass(slots=True)
class Unit:
    """One thing a message stage handles; ``raw`` is exactly what goes on the wire."""

    kind: UnitKind
    raw: bytes = b""
    opcode: int = 0
    payload: bytes = b""
    """The unmasked payload of a message (its frames joined) or control frame."""
    index: int = -1
    """For messages: the how-manyth data message in this direction of this connection
    (0 is the first after the handshake)."""
    spans: tuple[FrameSpan, ...] = ()
    signal: Signal | None = None
    detail: dict[str, Any] | None = None
    """For notes: what the fault did."""
    decoded: Any = field(default=None, compare=False)
    """Cache for :func:`nbstream.faults.frames.decode_unit`."""

    @classmethod
    def of_signal(cls, signal: Signal) -> Unit:
        """A unit carrying the end of the stream."""
        return cls(UnitKind.SIGNAL, signal=signal)

    @classmethod
    def note(cls, detail: dict[str, Any]) -> Unit:
        """A unit carrying a fault's report (no bytes)."""
        return cls(UnitKind.NOTE, detail=detail)


@dataclass(frozen=True, slots=True)
class Note:
    """What a pipe tells the proxy's shell: a message passed, or a fault acted.

    ``kind`` is ``frame`` (a data message was written on; ``opcode`` and ``payload``
    say which) or ``fault`` (``detail`` says what was done, starting with ``fault``).
    """

    kind: Literal["frame", "fault"]
    way: Way
    opcode: int = 0
    payload: bytes = b""
    detail: dict[str, Any] | None = None
    unit: Unit | None = None
    """The message a frame note is about (its decoded envelope is cached there)."""


def size_of(item: Unit | Item) -> int:
    """Bytes an item holds (signals and notes hold none)."""
    if isinstance(item, bytes):
        return len(item)
    if isinstance(item, Unit):
        return len(item.raw)
    return 0


T = TypeVar("T", Unit, Item)


class TimedQueue(Generic[T]):
    """Items each due at a time, released in order: a later item never overtakes.

    Every stage keeps what it holds here. ``held_bytes`` counts the bytes inside, so
    that the shell can stop reading from a socket while a stage holds too much.
    """

    def __init__(self) -> None:
        self._items: deque[tuple[float, T]] = deque()
        self._last = float("-inf")
        self.held_bytes = 0

    def put(self, due: float, item: T) -> float:
        """Queue ``item`` for ``due`` (or later: after the item before it); returns when."""
        due = max(due, self._last)
        self._last = due
        self._items.append((due, item))
        self.held_bytes += size_of(item)
        return due

    def take(self, now: float) -> list[tuple[float, T]]:
        """The items due at ``now`` or before, oldest first, with the time each was due."""
        items = self._items
        out: list[tuple[float, T]] = []
        while items and items[0][0] <= now:
            entry = items.popleft()
            self.held_bytes -= size_of(entry[1])
            out.append(entry)
        return out

    def take_all(self) -> list[tuple[float, T]]:
        """Everything held, whenever due (a stage being removed passes it all on)."""
        out = list(self._items)
        self._items.clear()
        self.held_bytes = 0
        return out

    def deadline(self) -> float | None:
        """When the first item is due, or None if the queue is empty."""
        return self._items[0][0] if self._items else None

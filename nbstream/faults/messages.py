"""WebSocket-level faults: stages over whole messages, which TCP-level tools cannot do.

Each stage picks the messages it acts on with the same rules (:meth:`Chosen.picks`):
data messages only (pings, pongs and close frames always pass), then ``index``
(the how-manyth message of this direction on the connection, 0 first), ``match``
(a message type such as ``"end"``, or a predicate on the decoded message), at most
``times`` messages in all (every connection counts), each with ``probability``. What a stage does to
a message is reported by a note unit placed where the message was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from nbstream.faults.frames import decode_unit
from nbstream.faults.stage import Stage, Tally
from nbstream.faults.units import Unit, UnitKind
from nbstream.protocol import Message

logger = logging.getLogger(__name__)

Match = str | Callable[[Any], object] | None
"""A message type (``"end"``) or a predicate given the decoded message: an nbstream
``Message`` for an envelope, else the text (``str``) or ``bytes``."""


def matches(match: Match, unit: Unit) -> bool:
    """Whether ``unit`` is a message ``match`` picks (a failing predicate picks nothing)."""
    if match is None:
        return True
    decoded = decode_unit(unit)
    if isinstance(match, str):
        return isinstance(decoded, Message) and decoded.type == match
    try:
        return bool(match(decoded))
    except Exception:
        logger.exception("a fault's match predicate raised; the message passes untouched")
        return False


def describe(unit: Unit) -> dict[str, Any]:
    """What a fault event says about the message it touched."""
    decoded = decode_unit(unit)
    kind = decoded.type if isinstance(decoded, Message) else (
        "text" if isinstance(decoded, str) else "binary")
    return {"index": unit.index, "type": kind, "size": len(unit.payload)}


class Chosen(Stage[Unit]):
    """A message stage: picks messages by ``index``, ``match``, ``times``, ``probability``."""

    index: int | None
    match: Match
    times: int | None
    probability: float
    tally: Tally

    def picks(self, unit: Unit) -> bool:
        """Whether this stage acts on ``unit`` (counts it against ``times`` if so)."""
        if unit.kind is not UnitKind.MESSAGE:
            return False
        if self.times is not None and self.tally.picked >= self.times:
            return False
        if self.index is not None and unit.index != self.index:
            return False
        if not matches(self.match, unit):
            return False
        if self.probability < 1.0 and self.rng.random() >= self.probability:
            return False
        self.tally.picked += 1
        return True

    def note(self, unit: Unit, **detail: Any) -> Unit:
        """A note unit saying this stage acted on ``unit``."""
        return Unit.note({"fault": self.name, **describe(unit), **detail})


class Drop(Chosen):
    """The picked messages never arrive."""

    name = "drop"

    def push(self, item: Unit, at: float) -> None:
        self.queue.put(at, self.note(item) if self.picks(item) else item)


class Duplicate(Chosen):
    """The picked messages arrive twice, back to back."""

    name = "duplicate"

    def push(self, item: Unit, at: float) -> None:
        if self.picks(item):
            self.queue.put(at, self.note(item))
            self.queue.put(at, item)
        self.queue.put(at, item)


class Delay(Chosen):
    """A picked message is held ``ms``; what follows waits behind it, as over TCP."""

    name = "delay"
    ms: float

    def push(self, item: Unit, at: float) -> None:
        if self.picks(item):
            self.queue.put(at, self.note(item, ms=self.ms))
            self.queue.put(at + self.ms / 1000, item)
        else:
            self.queue.put(at, item)


class Reorder(Chosen):
    """A picked message is held until the next message has passed (at most ``ms``)."""

    name = "reorder"
    ms: float
    _held: Unit | None = None
    _until = 0.0

    def push(self, item: Unit, at: float) -> None:
        if self._held is None:
            if self.picks(item):
                self._held, self._until = item, at + self.ms / 1000
            else:
                self.queue.put(at, item)
            return
        self.queue.put(at, item)
        if item.kind in (UnitKind.MESSAGE, UnitKind.SIGNAL):
            self._let_go(at, after=item.index)

    def _let_go(self, at: float, after: int | None) -> None:
        held, self._held = self._held, None
        assert held is not None
        self.queue.put(at, self.note(held, after=after))
        self.queue.put(at, held)

    def deadline(self) -> float | None:
        if self._held is not None:
            return min(self._until, self.queue.deadline() or self._until)
        return self.queue.deadline()

    def take(self, now: float) -> list[tuple[float, Unit]]:
        if self._held is not None and self._until <= now:
            self._let_go(self._until, after=None)
        return self.queue.take(now)

    def release(self, now: float) -> list[tuple[float, Unit]]:
        if self._held is not None:
            self._let_go(now, after=None)
        return super().release(now)


class Corrupt(Chosen):
    """Flips ``bytes`` payload bytes of a picked message (XOR 0xFF).

    In a text message made of ASCII (JSON) that always makes invalid UTF-8, so the
    receiver must fail the connection with 1007 (RFC 6455 section 8.1).
    """

    name = "corrupt"
    bytes: int

    def push(self, item: Unit, at: float) -> None:
        if item.payload and self.picks(item):
            spots = sorted(self.rng.sample(range(len(item.payload)),
                                           min(self.bytes, len(item.payload))))
            self.queue.put(at, self.note(item, positions=spots))
            item = _flipped(item, spots)
        self.queue.put(at, item)


def _flipped(unit: Unit, positions: list[int]) -> Unit:
    """``unit`` with the payload bytes at ``positions`` flipped, in its raw bytes too.

    Flipping a masked byte flips the byte it unmasks to, so no re-masking is needed.
    """
    raw, payload = bytearray(unit.raw), bytearray(unit.payload)
    for position in positions:
        payload[position] ^= 0xFF
        offset = position
        for span in unit.spans:
            if offset < span.length:
                raw[span.start + span.header + offset] ^= 0xFF
                break
            offset -= span.length
    return Unit(unit.kind, bytes(raw), unit.opcode, bytes(payload), unit.index, unit.spans)


class Stall(Stage[Unit]):
    """Nothing passes this way (messages, control frames, the end) for ``ms``, or until
    the fault is removed (``ms=None``); the other direction goes on. Nothing is lost."""

    name = "stall"
    ms: float | None
    _told = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._held: list[Unit] = []
        self._held_bytes = 0
        super().__init__(*args, **kwargs)

    def _until(self) -> float:
        return float("inf") if self.ms is None else self.started + self.ms / 1000

    def push(self, item: Unit, at: float) -> None:
        if at < self._until():
            if not self._told:
                self._told = True
                self.report(ms=self.ms)
            self._held.append(item)
            self._held_bytes += len(item.raw)
            return
        self._let_go(at)
        self.queue.put(at, item)

    def _let_go(self, at: float) -> None:
        for unit in self._held:
            self.queue.put(at, unit)
        self._held, self._held_bytes = [], 0

    def deadline(self) -> float | None:
        until = self._until()
        if self._held and until != float("inf"):
            return until
        return self.queue.deadline()

    def take(self, now: float) -> list[tuple[float, Unit]]:
        until = self._until()
        if self._held and until <= now:
            self._let_go(until)
        return self.queue.take(now)

    def release(self, now: float) -> list[tuple[float, Unit]]:
        self._let_go(now)
        return super().release(now)

    @property
    def held_bytes(self) -> int:
        return self.queue.held_bytes + self._held_bytes

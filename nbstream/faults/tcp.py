"""TCP-level faults: stages over the byte stream, with Toxiproxy's meanings.

Each acts on bytes as they would travel over TCP, whatever the messages inside;
see docs/faults.md for the table against Toxiproxy's toxics. Resets never travel
through a stage: a pipe acts on :data:`~nbstream.faults.units.Signal.RESET` at once.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from nbstream.faults.stage import Report, Stage
from nbstream.faults.units import Item, Signal

_ENDS = (Signal.EOF, Signal.CLOSE)


class Latency(Stage[Item]):
    """Holds every piece of data ``ms`` milliseconds, give or take ``jitter_ms``.

    Bytes never overtake each other (TCP delivers in order), so jitter widens the
    spread of arrival times without reordering anything.
    """

    name = "latency"
    ms: float
    jitter_ms: float
    _told = False

    def push(self, item: Item, at: float) -> None:
        if not self._told:
            self._told = True
            self.report(ms=self.ms, jitter_ms=self.jitter_ms)
        jitter = self.jitter_ms
        delay = self.ms + (self.rng.uniform(-jitter, jitter) if jitter else 0.0)
        self.queue.put(at + max(0.0, delay) / 1000, item)


class Bandwidth(Stage[Item]):
    """Lets ``kbps`` kilobytes (1,000 bytes) through per second, in pieces of 20 ms."""

    name = "bandwidth"
    kbps: float
    PIECE_SECONDS = 0.02
    _free = float("-inf")
    _told = False

    def push(self, item: Item, at: float) -> None:
        if not isinstance(item, bytes):
            self.queue.put(max(at, self._free), item)
            return
        if not self._told:
            self._told = True
            self.report(kbps=self.kbps)
        rate = self.kbps * 1000
        piece = max(1, int(rate * self.PIECE_SECONDS))
        for start in range(0, len(item), piece):
            chunk = item[start:start + piece]
            self._free = max(at, self._free) + len(chunk) / rate
            self.queue.put(self._free, chunk)


class Slicer(Stage[Item]):
    """Splits data into pieces of about ``average_size`` bytes (plus or minus
    ``size_variation``), ``delay_us`` microseconds apart: many small TCP writes."""

    name = "slicer"
    average_size: int
    size_variation: int
    delay_us: float
    _told = False

    def push(self, item: Item, at: float) -> None:
        if not isinstance(item, bytes):
            self.queue.put(at, item)
            return
        if not self._told:
            self._told = True
            self.report(average_size=self.average_size, size_variation=self.size_variation,
                        delay_us=self.delay_us)
        variation, position, due = self.size_variation, 0, at
        while position < len(item):
            size = self.average_size + (self.rng.randint(-variation, variation)
                                        if variation else 0)
            size = max(1, size)
            self.queue.put(due, item[position:position + size])
            position += size
            due += self.delay_us / 1e6


class Timeout(Stage[Item]):
    """Stops all data (dropped, as Toxiproxy does) and closes the connection after
    ``ms``; with ``ms=0`` never closes it: a half-open connection, silent both ways
    if applied both ways. Removing it closes the connection (data was lost)."""

    name = "timeout"
    ms: float
    _dropped = 0
    _closed = False

    def __init__(self, params: Mapping[str, Any], rng: random.Random, now: float,
                 report: Report) -> None:
        super().__init__(params, rng, now, report)
        self.report(ms=self.ms, half_open=self.ms == 0)

    def push(self, item: Item, at: float) -> None:
        if isinstance(item, bytes):
            self._dropped += len(item)
        else:
            self.queue.put(at, item)

    def _close_at(self) -> float | None:
        return None if self.ms <= 0 or self._closed else self.started + self.ms / 1000

    def deadline(self) -> float | None:
        times = [t for t in (self.queue.deadline(), self._close_at()) if t is not None]
        return min(times) if times else None

    def take(self, now: float) -> list[tuple[float, Item]]:
        close_at = self._close_at()
        if close_at is not None and close_at <= now:
            self._closed = True
            self.report(closed=True, dropped_bytes=self._dropped)
            return [(close_at, Signal.CLOSE)]
        return self.queue.take(now)

    def release(self, now: float) -> list[tuple[float, Item]]:
        if self._closed:
            return []
        self.report(removed=True, dropped_bytes=self._dropped)
        return [(now, Signal.CLOSE)]


class ResetPeer(Stage[Item]):
    """Resets the connection (TCP RST) ``ms`` after the next data; that data and any
    after it are dropped (Toxiproxy's ``reset_peer``)."""

    name = "reset_peer"
    ms: float
    _reset_at: float | None = None
    _done = False

    def push(self, item: Item, at: float) -> None:
        if isinstance(item, bytes):
            if self._reset_at is None:
                self._reset_at = at + self.ms / 1000
        else:
            self.queue.put(at, item)

    def deadline(self) -> float | None:
        if self._reset_at is not None and not self._done:
            return self._reset_at
        return self.queue.deadline()

    def take(self, now: float) -> list[tuple[float, Item]]:
        if self._reset_at is not None and not self._done and self._reset_at <= now:
            self._done = True
            self.report(ms=self.ms)
            return [(self._reset_at, Signal.RESET)]
        return self.queue.take(now)


class LimitData(Stage[Item]):
    """Closes the connection once ``bytes`` bytes went through (this direction)."""

    name = "limit_data"
    bytes: int
    _sent = 0
    _done = False

    def push(self, item: Item, at: float) -> None:
        if self._done:
            return
        if not isinstance(item, bytes):
            self.queue.put(at, item)
            return
        remaining = self.bytes - self._sent
        if len(item) < remaining:
            self._sent += len(item)
            self.queue.put(at, item)
            return
        if remaining > 0:
            self.queue.put(at, item[:remaining])
            self._sent += remaining
        self._done = True
        self.report(bytes=self.bytes)
        self.queue.put(at, Signal.CLOSE)


class SlowClose(Stage[Item]):
    """Delays the end of the stream (FIN) by ``ms``; data passes at once."""

    name = "slow_close"
    ms: float

    def push(self, item: Item, at: float) -> None:
        if item in _ENDS:
            self.report(ms=self.ms)
            self.queue.put(at + self.ms / 1000, item)
        else:
            self.queue.put(at, item)

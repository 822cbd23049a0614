"""Is fan-out working, and what did it lose? Counting for the fan-out channel. No I/O.

Each process numbers what it publishes (:class:`Sequencer`) and publishes a heartbeat
every second carrying the number up to which everything is settled (sent, or known
unsent). A receiver (:class:`GapCounter`) then knows, at every heartbeat of a
publisher, which of its publications never arrived. A process also receives its own
heartbeats: :class:`FanoutWatch` says the subscription is silent when none came back
within a deadline, however healthy the connection looks.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass, field


class Sequencer:
    """Numbers a publisher's publications; :attr:`settled` is what heartbeats carry."""

    def __init__(self) -> None:
        self._last = 0
        self._open: set[int] = set()

    def next(self) -> int:
        """The number of a publication about to be sent (1, 2, ...)."""
        self._last += 1
        self._open.add(self._last)
        return self._last

    def done(self, seq: int) -> None:
        """Publication ``seq`` was sent, or will never be."""
        self._open.discard(seq)

    @property
    def last(self) -> int:
        """The number of the latest publication (0 before the first)."""
        return self._last

    @property
    def settled(self) -> int:
        """Every publication up to this number is sent or known unsent."""
        return min(self._open) - 1 if self._open else self._last


@dataclass
class _Publisher:
    watermark: int
    """Every publication up to here is counted (received or missed)."""
    heard: float
    """When the publisher was last heard from (monotonic seconds)."""
    received: set[int] = field(default_factory=set)
    """Publications above the watermark that arrived."""


class GapCounter:
    """Counts the publications of other processes that never arrived here.

    A publisher is known from the first thing heard from it: nothing it published
    before counts. Publishers silent for ``forget_after`` seconds are forgotten (a
    stopped process; a new one has a new id).
    """

    def __init__(self, forget_after: float = 60.0) -> None:
        self.forget_after = forget_after
        self.missed = 0
        self._publishers: dict[str, _Publisher] = {}

    def received(self, node: str, seq: int, now: float) -> None:
        """Publication ``seq`` of ``node`` arrived."""
        publisher = self._publishers.get(node)
        if publisher is None:
            self._publishers[node] = _Publisher(seq - 1, now, {seq})
            return
        publisher.heard = now
        if seq > publisher.watermark:
            publisher.received.add(seq)

    def beat(self, node: str, settled: int, now: float) -> int:
        """``node`` says it settled everything up to ``settled``; returns how many went missing."""
        publisher = self._publishers.get(node)
        if publisher is None:
            self._publishers[node] = _Publisher(settled, now)
            self._forget(now)
            return 0
        publisher.heard = now
        if settled <= publisher.watermark:
            return 0
        arrived = {seq for seq in publisher.received if seq <= settled}
        lost = settled - publisher.watermark - len(arrived)
        publisher.received -= arrived
        publisher.watermark = settled
        self.missed += lost
        return lost

    def _forget(self, now: float) -> None:
        for node in [n for n, p in self._publishers.items()
                     if now - p.heard > self.forget_after]:
            del self._publishers[node]


class FanoutWatch:
    """Whether this process's subscription delivers, judged by its own heartbeats.

    A heartbeat that Redis accepted (its PUBLISH succeeded) must come back through the
    subscription. The subscription is *silent* when one sent more than ``deadline``
    seconds ago has not, however healthy its connection looks. Ask :meth:`silent`
    only after reading everything that had arrived (a blocked event loop is not a
    silent subscription).

    Args:
        deadline: Seconds a heartbeat may take to come back.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.lag: float | None = None
        """Seconds the latest own heartbeat took through the channel."""
        self._subscribed = False
        self._unanswered: deque[float] = deque()
        """Send times (monotonic) of heartbeats published since subscribing, not back yet."""
        self._last_ok: float | None = None
        """When fan-out last worked: a heartbeat came back (or the first subscription)."""

    def subscribed(self, now: float) -> None:
        """A subscription was (re)established at ``now``."""
        self._subscribed = True
        self._unanswered.clear()
        if self._last_ok is None:
            self._last_ok = now

    def unsubscribed(self) -> None:
        """The subscription is gone."""
        self._subscribed = False
        self._unanswered.clear()

    def sending(self, at: float) -> None:
        """A heartbeat stamped ``at`` is being published (call before the PUBLISH)."""
        if self._subscribed:
            self._unanswered.append(at)

    def not_sent(self, at: float) -> None:
        """The heartbeat stamped ``at`` could not be published: expect nothing back."""
        with contextlib.suppress(ValueError):
            self._unanswered.remove(at)

    def beat_back(self, sent: float, now: float) -> None:
        """An own heartbeat sent at ``sent`` arrived at ``now`` (both monotonic)."""
        while self._unanswered and self._unanswered[0] <= sent:
            self._unanswered.popleft()
        if self._subscribed:
            self._last_ok = now
            self.lag = max(0.0, now - sent)

    def silent(self, now: float) -> bool:
        """True when a heartbeat sent over ``deadline`` seconds ago has not come back."""
        return bool(self._unanswered) and now - self._unanswered[0] > self.deadline

    def working(self, now: float) -> bool:
        """True while subscribed and not silent."""
        return self._subscribed and not self.silent(now)

    def silence(self, now: float) -> float:
        """Seconds since fan-out was last known to work (0 before the first subscription)."""
        return 0.0 if self._last_ok is None else max(0.0, now - self._last_ok)

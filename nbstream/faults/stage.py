"""A stage: one fault acting on one direction of one connection (Toxiproxy's toxic).

A pipe is a chain of stages. Each stage takes items in with the time they reached
it (:meth:`Stage.push`), holds them in a :class:`~nbstream.faults.units.TimedQueue`
and gives them out when due (:meth:`Stage.take`); :meth:`Stage.deadline` says when
it next has something. Stages never read a clock: ``at`` and ``now`` are passed in,
and their randomness comes from the ``rng`` they are given, so a seeded proxy
repeats itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic

from nbstream.faults.units import T, TimedQueue

Report = Callable[[dict[str, Any]], None]
"""How a stage says what it did: ``report({"fault": "latency", "ms": 50, ...})``."""


@dataclass
class Tally:
    """How many messages a message fault picked so far, on every connection: its
    stages share one, so that ``times`` counts across connections."""

    picked: int = 0


class Stage(Generic[T]):
    """Base of every stage: by default it passes each item on at once, in order.

    Subclasses declare their parameters as annotated attributes; :meth:`configure`
    sets them (at creation, and again when the fault is updated while it runs) from
    parameters already checked by :mod:`nbstream.faults.vocabulary`.
    """

    name = ""
    """The fault's name, as :meth:`nbstream.FaultProxy.add` takes it."""

    def __init__(self, params: Mapping[str, Any], rng: random.Random, now: float,
                 report: Report) -> None:
        self.rng = rng
        self.started = now
        """When the stage began acting on its connection."""
        self.queue: TimedQueue[T] = TimedQueue()
        self._report = report
        self.configure(params)

    def configure(self, params: Mapping[str, Any]) -> None:
        """Take new parameter values."""
        for key, value in params.items():
            setattr(self, key, value)

    def report(self, **detail: Any) -> None:
        """Tell the proxy what this fault just did (an event on ``proxy.events``)."""
        self._report({"fault": self.name, **detail})

    def push(self, item: T, at: float) -> None:
        """Take ``item``, which reached this stage at time ``at``."""
        self.queue.put(at, item)

    def take(self, now: float) -> list[tuple[float, T]]:
        """The items due by ``now``, in order, each with the time it was due."""
        return self.queue.take(now)

    def deadline(self) -> float | None:
        """When :meth:`take` next has something, or None if only a push can change that."""
        return self.queue.deadline()

    def release(self, now: float) -> list[tuple[float, T]]:
        """The fault is being removed: everything held, to be passed on at once."""
        return [(now, item) for _, item in self.queue.take_all()]

    @property
    def held_bytes(self) -> int:
        """Bytes this stage holds."""
        return self.queue.held_bytes

"""One timer per client for every receive deadline and for idle checks.

A receive registers its deadline here instead of arming a timer of its own (a timer
per chat cost 6-9% of a request/response round trip). The watchdog wakes at the
earliest deadline, cancels the receives whose time is up (their :class:`Deadline`
turns the cancellation into ``TimeoutError``, like ``asyncio.timeout``), and asks
its owner what to do about idle time (the client starts a reader that answers
heartbeats between notebook cells).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class Watchdog:
    """Deadlines of the tasks waiting in a receive, and the idle check of one client.

    ``on_idle(now)`` runs on every wake-up; it returns when it wants to run next
    (loop time), or None for "only when a deadline needs me".
    """

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_idle: Callable[[float], float | None]) -> None:
        self._loop = loop
        self._on_idle = on_idle
        self._handle: asyncio.TimerHandle | None = None
        self._at = float("inf")
        self.deadlines: dict[asyncio.Task[Any], float] = {}
        """Tasks waiting in a receive, and when their time is up (loop time)."""
        self.expired: set[asyncio.Task[Any]] = set()

    def arm(self, when: float) -> None:
        """Make sure the watchdog runs at ``when`` (loop time) at the latest."""
        if when < self._at:
            if self._handle is not None:
                self._handle.cancel()
            self._handle, self._at = self._loop.call_at(when, self._run), when

    def _run(self) -> None:
        self._handle, self._at = None, float("inf")
        now = self._loop.time()
        for task, when in self.deadlines.items():
            if when <= now and task not in self.expired:
                self.expired.add(task)
                task.cancel()
        later = [when for when in self.deadlines.values() if when > now]
        wanted = self._on_idle(now)
        if wanted is not None:
            later.append(wanted)
        if later:
            self.arm(min(later))

    def deadline(self, timeout: float) -> Deadline:
        """``with watchdog.deadline(timeout):`` raises TimeoutError after ``timeout`` s."""
        return Deadline(self, timeout)

    def stop(self) -> None:
        """Cancel the timer (the client is closed)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle, self._at = None, float("inf")


class Deadline:
    """Like ``asyncio.timeout`` (the task is cancelled, the cancellation becomes a
    TimeoutError) but enforced by the :class:`Watchdog`, so a receive that ends in time
    costs no timer."""

    __slots__ = ("_cancelling", "_task", "_watchdog")

    def __init__(self, watchdog: Watchdog, timeout: float) -> None:
        self._watchdog = watchdog
        task = asyncio.current_task()
        assert task is not None, "receives run in a task"
        self._task = task
        self._cancelling = task.cancelling()
        when = watchdog._loop.time() + timeout
        watchdog.deadlines[task] = when
        watchdog.arm(when)

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        watchdog, task = self._watchdog, self._task
        del watchdog.deadlines[task]
        if task in watchdog.expired:
            watchdog.expired.discard(task)
            if exc_type is asyncio.CancelledError and task.uncancel() <= self._cancelling:
                raise TimeoutError from exc

"""Pace a view's pushes to the browser: at most one flush per interval, on one loop.

Every synced trait change is sent to the browser at once, so a view that followed
each message would flood the kernel's comm channel. Instead a view folds events
into its own state and calls :meth:`Throttle.poke`; the throttle runs the view's
``flush`` on the view's event loop no sooner than ``interval`` seconds after the
previous one. Between pokes nothing wakes up.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from nbstream import runtime

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.1
"""Seconds between two pushes of one view: at most ten a second."""

Flush = Callable[[], float | None]
"""Push the folded state; return seconds until it should run again unprompted, or None."""


class Throttle:
    """Runs ``flush`` on ``loop`` at most once per ``interval`` seconds after a poke.

    ``flush`` may return a delay to be called again without a poke (for figures
    that change with time alone, such as a rate decaying to zero), or None.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, flush: Flush,
                 interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.flushes = 0
        """How many times ``flush`` ran."""
        self._loop = loop
        self._flush = flush
        self._clock = clock
        self._due = False
        self._closed = False
        self._handle: asyncio.TimerHandle | None = None
        self._last = -math.inf

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the flushes run on (the view's)."""
        return self._loop

    def poke(self) -> None:
        """Ask for a flush. Costs one attribute test while one is due; any thread."""
        if self._due or self._closed:
            return
        self._due = True
        self._on_loop(self._schedule)

    def _schedule(self, delay: float = 0.0) -> None:
        if self._closed or self._loop.is_closed():
            return
        wait = max(delay, self._last + self.interval - self._clock(), 0.0)
        self._handle = self._loop.call_later(wait, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._due = False  # before flushing: an event folded from now on pokes again
        self._last = self._clock()
        self.flushes += 1
        try:
            again = self._flush()
        except Exception:
            logger.exception("a view failed to refresh; it will try again on the next event")
            return
        if again is not None and not self._due:
            self._due = True
            self._schedule(again)

    def close(self) -> None:
        """Stop flushing for good. Safe to call twice and from any thread."""
        self._closed = True
        handle, self._handle = self._handle, None
        if handle is not None:
            self._on_loop(handle.cancel)

    def _on_loop(self, callback: Callable[[], None]) -> None:
        if runtime.running_loop() is self._loop:
            callback()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback)

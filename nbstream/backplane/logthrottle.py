"""Log a repeated problem once per interval, counting the repeats, instead of flooding.

A store that refuses every write (out of memory) fails every batch, every heartbeat
and every publish: without a bound that is thousands of identical ERROR lines a
minute, and the first useful line scrolls away.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Topic:
    logged_at: float
    repeats: int = 0


class ThrottledLog:
    """``logger`` with at most one record per ``topic`` every ``interval`` seconds.

    The first record of a topic goes out at once; later ones within the interval are
    counted, and the next record that goes out says how many were left out.
    """

    def __init__(self, logger: logging.Logger, interval: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._topics: dict[str, _Topic] = {}

    def log(self, level: int, topic: str, msg: str, *args: object,
            exc_info: bool = False) -> bool:
        """Log ``msg % args`` unless ``topic`` was logged within the interval; True if logged.

        ``exc_info`` adds the traceback of the exception being handled.
        """
        now = self._clock()
        seen = self._topics.get(topic)
        if seen is not None and now - seen.logged_at < self.interval:
            seen.repeats += 1
            return False
        if seen is not None and seen.repeats:
            msg += " (%d more like this in the last %.0f s)"
            args = (*args, seen.repeats, now - seen.logged_at)
        self._topics[topic] = _Topic(now)
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def error(self, topic: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """:meth:`log` at ERROR."""
        return self.log(logging.ERROR, topic, msg, *args, exc_info=exc_info)

    def warning(self, topic: str, msg: str, *args: object) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, topic, msg, *args)

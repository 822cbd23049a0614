"""Whether Redis answers, as every part of the Redis backplane sees it, and what to log.

The writer, the fan-out subscriber, the liveness heartbeat and the calls a handshake
waits for all report here: :meth:`RedisLink.failed` when Redis could not be reached,
:meth:`RedisLink.reached` when it answered. One outage is one ERROR line and one
WARNING per degraded feature; repeated refusals (Redis out of memory) are logged at
most once per :data:`LOG_INTERVAL` per topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from nbstream.backplane.logthrottle import ThrottledLog

logger = logging.getLogger("nbstream.backplane.redis")

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
"""Failures that mean Redis cannot be reached (as opposed to Redis refusing a command)."""

LOG_INTERVAL = 30.0
"""Seconds between two log lines about the same repeated problem."""


class RedisLink:
    """Reachability of one Redis, shared by the parts of a backplane; logs outages once."""

    def __init__(self, url: str) -> None:
        self.url = redacted(url)
        """The URL, without its password, for logs and errors."""
        self.log = ThrottledLog(logger, LOG_INTERVAL)
        """For problems that repeat while Redis answers (refusals, malformed input)."""
        self.down_since: float | None = None
        self.up = asyncio.Event()
        """Set while Redis answers; waiters retry once it is."""
        self.dropped = 0
        """History writes lost since the start (queue full, or refused by Redis)."""
        self.dropped_at: float | None = None
        """When the latest one was lost (monotonic)."""
        self._warned: set[str] = set()

    @property
    def down(self) -> bool:
        """True since a call failed to reach Redis, until one succeeds."""
        return self.down_since is not None

    def failed(self, doing: str, exc: BaseException) -> None:
        """A call made while ``doing`` could not reach Redis; logs once per outage."""
        self.up.clear()
        if self.down_since is None:
            self.down_since = time.monotonic()
            logger.error("Redis at %s is unreachable while %s (%s: %s); fan-out to other "
                         "processes and shared history are suspended until it is back",
                         self.url, doing, type(exc).__name__, exc)
        else:
            logger.debug("Redis still unreachable while %s: %s", doing, exc)

    def reached(self) -> None:
        """A call reached Redis; logs the end of an outage (with the writes lost)."""
        self.up.set()
        if self.down_since is not None:
            logger.warning("Redis at %s is reachable again after %.1f s (%d history "
                           "write(s) dropped so far)", self.url,
                           time.monotonic() - self.down_since, self.dropped)
            self.down_since = None
            self._warned.clear()

    def drop(self, writes: int) -> None:
        """``writes`` history writes were lost."""
        self.dropped += writes
        self.dropped_at = time.monotonic()

    def warn_once(self, topic: str, text: str) -> None:
        """Log ``text`` once per outage."""
        if topic not in self._warned:
            self._warned.add(topic)
            logger.warning(text)


def redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))

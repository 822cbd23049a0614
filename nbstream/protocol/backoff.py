"""Reconnect delays: exponential backoff with full jitter, capped and limited."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Delay before reconnect attempt ``n`` (0-based): uniform in [0, min(cap, base * 2**n)].

    Full jitter spreads the reconnects of many clients dropped at once (a server
    restart) instead of having them return in waves. After ``attempts`` failures
    the client gives up and reports the connection closed.
    """

    base: float = 0.1
    cap: float = 5.0
    attempts: int = 10
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt``."""
        ceiling: float = min(self.cap, self.base * 2 ** min(attempt, 30))
        return self.random() * ceiling

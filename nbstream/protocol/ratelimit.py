"""Token-bucket rate limiting: ``rate`` messages per second, bursts up to ``burst``."""

from __future__ import annotations


class TokenBucket:
    """A token bucket with the clock passed in.

    ``take(now)`` returns 0.0 when the message may pass, otherwise the seconds to
    wait before it would (put that in RATE_LIMITED's ``retry_after``).
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._updated = now

    def take(self, now: float, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens if available; returns 0.0 or the seconds to wait."""
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now
        if self._tokens >= cost:
            self._tokens -= cost
            return 0.0
        return (cost - self._tokens) / self.rate

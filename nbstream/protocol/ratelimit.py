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


class UserBuckets:
    """One :class:`TokenBucket` per user, shared by all of that user's connections.

    ``rate`` None switches per-user limits off (:meth:`bucket` returns None).
    """

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, user: str | None, now: float) -> TokenBucket | None:
        """The bucket of ``user``, made on first use; None without a user or a rate."""
        if self.rate is None or user is None:
            return None
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = self._buckets[user] = TokenBucket(self.rate, max(1.0, 2 * self.rate), now)
        return bucket

    def prune(self, connected: set[str]) -> None:
        """Forget the buckets of users with no connection left."""
        for user in [u for u in self._buckets if u not in connected]:
            del self._buckets[user]

    def __len__(self) -> int:
        return len(self._buckets)

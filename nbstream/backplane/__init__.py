"""What the server processes of one deployment share: fan-out, counts, session history.

``serve(backplane="memory")`` (the default) keeps everything in the process.
``serve(backplane="redis://HOST:PORT/DB")`` lets several processes act as one; see
:mod:`nbstream.backplane.redis` and docs/scaling.md.
"""

from nbstream.backplane.base import (
    Backplane,
    BackplaneStats,
    Claim,
    ClaimOutcome,
    Delivery,
    MemoryBackplane,
    SessionRecord,
)

__all__ = ["Backplane", "BackplaneStats", "Claim", "ClaimOutcome", "Delivery",
           "MemoryBackplane", "SessionRecord", "create"]


def create(spec: str | Backplane, *, limits: str = "open") -> Backplane:
    """A backplane from ``"memory"``, a ``redis://`` URL, or an instance.

    ``limits`` ("open" or "closed") is what a Redis backplane's per-user limits do while
    Redis cannot count (see :data:`nbstream.backplane.members.LimitFailure`).
    """
    if isinstance(spec, Backplane):
        return spec
    if spec == "memory":
        return MemoryBackplane()
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from nbstream.backplane.redis import RedisBackplane

        return RedisBackplane(spec, limits="closed" if limits == "closed" else "open")
    raise ValueError(f"unknown backplane {spec!r}: use 'memory' or a redis:// URL")

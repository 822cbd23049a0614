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
    create,
)

__all__ = ["Backplane", "BackplaneStats", "Claim", "ClaimOutcome", "Delivery",
           "MemoryBackplane", "SessionRecord", "create"]

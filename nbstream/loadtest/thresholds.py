"""Pass or fail: which connections failed, and what a run must meet. No I/O.

As in Locust, a run fails by default when anything failed: any connection (the
handshake failed, or the server refused it right after) or any message. As with k6
thresholds, a run may instead be allowed an error rate and held to a latency:
``Thresholds(max_error_rate=0.01, max_p99=0.05)``. ``nbstream load`` turns the
verdict into its exit status.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nbstream.loadtest.errors import LocalError

if TYPE_CHECKING:
    import pandas as pd

_LOCAL_ENDINGS = (LocalError.TIMEOUT.value, LocalError.CANCELLED.value)
"""Connection errors the load tester caused itself (an overdue answer, a cancel)."""


def failed_connections(connections: pd.DataFrame) -> pd.Series[bool]:
    """Which connections failed: the handshake failed, or the server refused it after.

    A refusal after the handshake (TOO_MANY_CONNECTIONS, UNAUTHORIZED, a close before
    any answer) leaves a connection that opened, completed no message and ended with
    an error the server caused; a TIMEOUT or CANCELLED is the load tester's doing and
    counts against the message, not the connection.
    """
    never = connections["connected_at"].isna()
    error = connections["error"]
    server_ended = error.notna() & ~error.isin(_LOCAL_ENDINGS)
    refused = connections["connected_at"].notna() & (connections["completed"] == 0) \
        & server_ended.fillna(False).astype(bool)
    failed: pd.Series[bool] = never | refused
    return failed


@dataclass(frozen=True)
class Thresholds:
    """What a run must meet; the defaults fail it on any error and ignore latency."""

    max_error_rate: float = 0.0
    """Largest allowed fraction of failed messages, and of failed connections, each
    (0.01: 1 %); 1 accepts every error."""
    max_p99: float | None = None
    """Largest allowed p99 latency in seconds, measured from when a message was due
    (``latency_corrected``; the same as ``latency`` in the closed model)."""

    def __post_init__(self) -> None:
        if not 0 <= self.max_error_rate <= 1:
            raise ValueError(f"max_error_rate must be between 0 and 1, got "
                             f"{self.max_error_rate}")
        if self.max_p99 is not None and not (self.max_p99 > 0 and math.isfinite(self.max_p99)):
            raise ValueError(f"max_p99 must be a positive number of seconds, got {self.max_p99}")

    def violations(self, summary: Mapping[str, float]) -> list[str]:
        """What the run failed, one sentence each; empty when it passed.

        Args:
            summary: metric -> value, as in ``result.summary()["value"]``.
        """
        found = []
        for what, failed, total in (
            ("connections", summary["connections_failed"], summary["connections"]),
            ("messages", summary["errors"], summary["requests"]),
        ):
            rate = failed / total if total else 0.0
            if rate > self.max_error_rate:
                found.append(f"{failed:.0f} of {total:.0f} {what} failed ({_percent(rate)}; "
                             f"allowed {_percent(self.max_error_rate)})")
        if self.max_p99 is not None:
            p99 = summary["latency_corrected_p99"]
            if math.isnan(p99):
                found.append("no message completed, so p99 latency cannot be checked")
            elif p99 > self.max_p99:
                found.append(f"p99 latency {p99 * 1e3:.1f} ms is above {self.max_p99 * 1e3:g} ms")
        return found


def _percent(rate: float) -> str:
    return f"{rate * 100:.3g} %"

"""Application-level heartbeat bookkeeping for one connection (no timers, no I/O).

The server sends a ``ping`` envelope every ``interval`` seconds and expects a
``pong`` (or any other message: a peer that talks is alive) within ``timeout``.
The seed's ``HeartbeatManager`` polls a shared dict every 0.1 s per connection and
closes with 1002 (protocol error); the I/O shell here asks :meth:`Heartbeat.poll`
on one server-wide tick and closes a silent peer with 1011.
"""

from __future__ import annotations

import enum


class HeartbeatAction(enum.Enum):
    """What :meth:`Heartbeat.poll` asks the caller to do."""

    NOTHING = "nothing"
    SEND_PING = "send_ping"
    TIMED_OUT = "timed_out"


class Heartbeat:
    """Ping schedule and liveness of one peer. Pass ``now`` (monotonic seconds) in."""

    def __init__(self, interval: float, timeout: float, now: float) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError("heartbeat interval and timeout must be positive")
        self.interval = interval
        self.timeout = timeout
        self._next_ping_at = now + interval
        self._ping_id: str | None = None
        self._ping_sent_at = 0.0
        self._last_seen = now
        self.rtt: float | None = None
        """Round trip of the last answered ping, in seconds."""

    def poll(self, now: float) -> HeartbeatAction:
        """Call regularly; do what it says (then call :meth:`ping_sent` after a ping)."""
        if self._ping_id is not None:
            if self._last_seen >= self._ping_sent_at:
                self._ping_id = None  # the peer spoke after our ping: alive
                self._next_ping_at = self._ping_sent_at + self.interval
            elif now - self._ping_sent_at > self.timeout:
                return HeartbeatAction.TIMED_OUT
            else:
                return HeartbeatAction.NOTHING
        if now >= self._next_ping_at:
            return HeartbeatAction.SEND_PING
        return HeartbeatAction.NOTHING

    def ping_sent(self, ping_id: str, now: float) -> None:
        """Record that a ping with this message id went out."""
        self._ping_id = ping_id
        self._ping_sent_at = now

    def seen(self, now: float) -> None:
        """Record that the peer sent something (any message proves it is alive)."""
        self._last_seen = now

    def pong(self, ping_id: str | None, now: float) -> float | None:
        """Record a pong; returns the round trip if it answers the outstanding ping."""
        self._last_seen = now
        if ping_id is not None and ping_id == self._ping_id:
            self.rtt = now - self._ping_sent_at
            self._ping_id = None
            self._next_ping_at = self._ping_sent_at + self.interval
            return self.rtt
        return None

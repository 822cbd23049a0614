"""Every server option, its default and what it does (``serve(**options)``)."""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from nbstream.backplane import Backplane
from nbstream.server.auth import AuthSpec


@dataclass(frozen=True)
class ServerOptions:
    """Options for :func:`nbstream.serve`. ``None`` switches a limit off.

    Defaults follow the seed where it gives numbers (30 s / 10 s heartbeat, 5
    connections per user, 100 messages / 1 MB of history, batches of 10 within
    0.1 s) and stay friendly to notebooks where it does not (no rate limit, no
    context budget, batching off so that plain clients see one message per frame).
    """

    heartbeat_interval: float = 30.0
    """Seconds between ``ping`` envelopes to each connection."""
    heartbeat_timeout: float = 10.0
    """Seconds a peer has to answer a ping (a pong or any message) before 1011."""
    max_connections: int | None = 10_000
    """Open connections the server accepts; the next gets TOO_MANY_CONNECTIONS, 1013."""
    max_connections_per_user: int | None = 5
    """Open connections per identified user; the next gets TOO_MANY_CONNECTIONS, 1013."""
    max_message_bytes: int = 1_048_576
    """Largest incoming frame (after decompression); bigger frames close with 1009."""
    history_max_messages: int = 100
    """Outgoing messages kept per session."""
    history_max_bytes: int = 1_000_000
    """Encoded bytes of outgoing messages kept per session."""
    batch_max_size: int = 1
    """Messages per ``batch`` frame; 1 sends every message in its own frame."""
    batch_max_wait: float = 0.1
    """Seconds the oldest message of a partial batch may wait (batching on only)."""
    rate_limit: float | None = None
    """Messages per second per connection; beyond it RATE_LIMITED (connection stays)."""
    rate_burst: float | None = None
    """Bucket size for ``rate_limit``; defaults to twice the rate (at least 1)."""
    rate_limit_per_user: float | None = None
    """Messages per second across all connections of one user (burst: twice the rate)."""
    context_max_messages: int | None = None
    """Chats per session; beyond it CONTEXT_EXHAUSTED."""
    max_pending_chats: int = 16
    """Chats queued behind the one streaming; beyond it RATE_LIMITED."""
    send_timeout: float = 5.0
    """Seconds one frame may wait for a client's socket before the client counts as stuck
    and is dropped as a slow consumer (close 4002)."""
    max_queue_bytes: int = 1_048_576
    """Bytes queued for one slow client before it is dropped as a slow consumer (4002)."""
    session_ttl: float = 60.0
    """Seconds a session (history, running reply) outlives an abnormal disconnect, so the
    client can resume it; a normal close (1000) ends the session at once."""
    auth: AuthSpec | None = None
    """A token, a mapping of tokens to users, or a function token -> user (sync or async);
    None lets everyone in (users then name themselves with ``?user=``)."""
    auth_timeout: float = 5.0
    """Seconds a client without a handshake token has to send an ``auth`` message."""
    allowed_origins: Sequence[str] | None = None
    """Exact ``Origin`` values browsers may connect from (others get HTTP 403);
    clients that send no Origin (scripts, notebooks) are always allowed."""
    ssl: ssl_module.SSLContext | None = None
    """A server-side SSL context: the server then speaks ``wss://``."""
    metrics: bool = False
    """Serve Prometheus metrics at ``GET /metrics`` (``nbstream serve`` turns it on).
    Off by default in notebooks: counting every message costs a little per message."""
    backplane: str | Backplane = "memory"
    """``"memory"`` (this process only) or ``"redis://HOST:PORT/DB"`` to share fan-out,
    per-user counts and session history with other server processes."""
    open_timeout: float = 10.0
    """Seconds a client has to complete the opening handshake (websockets)."""
    close_timeout: float = 2.0
    """Seconds to wait for the peer's close frame before dropping TCP (websockets)."""
    ping_interval: float | None = 20.0
    """websockets' protocol-level keepalive ping, in seconds (None: off)."""
    ping_timeout: float | None = 20.0
    """Seconds to wait for websockets' protocol-level pong before closing 1011."""
    compression: str | None = None
    """``"deflate"`` for permessage-deflate; off by default (OWASP; it costs CPU)."""

    def __post_init__(self) -> None:
        if self.heartbeat_interval <= 0 or self.heartbeat_timeout <= 0:
            raise ValueError("heartbeat_interval and heartbeat_timeout must be positive")
        if self.batch_max_size < 1:
            raise ValueError("batch_max_size must be at least 1 (1 means no batching)")
        if self.max_message_bytes < 64:
            raise ValueError("max_message_bytes must be at least 64")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be positive or None")
        if self.compression not in (None, "deflate"):
            raise ValueError('compression must be None or "deflate"')

    @property
    def batching(self) -> bool:
        """True when outgoing messages are gathered into ``batch`` frames."""
        return self.batch_max_size > 1

    @property
    def burst(self) -> float:
        """The effective rate-limit bucket size."""
        if self.rate_burst is not None:
            return self.rate_burst
        return max(1.0, 2 * (self.rate_limit or 0))

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> ServerOptions:
        """Build options from ``serve(**options)``, naming any unknown option."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(
                f"unknown server option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**options)

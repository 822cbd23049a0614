"""Every server option, its default and what it does (``serve(**options)``)."""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from nbstream.backplane import Backplane
from nbstream.server.auth import AuthSpec
from nbstream.validation import count, kind, number, one_of, seconds, unknown, validate
from nbstream.wire import NAMES, TypeKey, WireProtocol

_RATE = number(0, exclusive=True, optional=True)
_SSL = kind(ssl_module.SSLContext, description="an ssl.SSLContext", optional=True)
_BACKPLANE = kind(str, Backplane, description='"memory", a redis:// URL or a Backplane')


@dataclass(frozen=True)
class ServerOptions:
    """Options for :func:`nbstream.serve`. ``None`` switches a limit off.

    Defaults follow the seed where it gives numbers (30 s / 10 s heartbeat, 5
    connections per user, 100 messages / 1 MB of history, batches of 10 within
    0.1 s) and stay friendly to notebooks where it does not (no rate limit, no
    context budget, batching off so that plain clients see one message per frame).
    """

    heartbeat_interval: float = field(default=30.0, metadata=seconds())
    """Seconds between ``ping`` envelopes to each connection."""
    heartbeat_timeout: float = field(default=10.0, metadata=seconds())
    """Seconds a peer has to answer a ping (a pong or any message) before 1011."""
    max_connections: int | None = field(default=10_000, metadata=count(1, optional=True))
    """Open connections the server accepts; the next gets TOO_MANY_CONNECTIONS, 1013."""
    max_connections_per_user: int | None = field(default=5, metadata=count(1, optional=True))
    """Open connections per identified user; the next gets TOO_MANY_CONNECTIONS, 1013."""
    max_message_bytes: int = field(default=1_048_576, metadata=count(64))
    """Largest incoming frame (after decompression); bigger frames close with 1009."""
    history_max_messages: int = field(default=100, metadata=count(0))
    """Outgoing messages kept per session."""
    history_max_bytes: int = field(default=1_000_000, metadata=count(0))
    """Encoded bytes of outgoing messages kept per session."""
    batch_max_size: int = field(default=1, metadata=count(1))
    """Messages per ``batch`` frame; 1 sends every message in its own frame."""
    batch_max_wait: float = field(default=0.1, metadata=seconds(zero=True))
    """Seconds the oldest message of a partial batch may wait (batching on only)."""
    rate_limit: float | None = field(default=None, metadata=_RATE)
    """Messages per second per connection; beyond it RATE_LIMITED (connection stays)."""
    rate_burst: float | None = field(default=None, metadata=number(1, optional=True))
    """Bucket size for ``rate_limit``; defaults to twice the rate (at least 1)."""
    rate_limit_per_user: float | None = field(default=None, metadata=_RATE)
    """Messages per second across all connections of one user (burst: twice the rate)."""
    context_max_messages: int | None = field(default=None, metadata=count(1, optional=True))
    """Chats per session; beyond it CONTEXT_EXHAUSTED."""
    max_pending_chats: int = field(default=16, metadata=count(0))
    """Chats queued behind the one streaming; beyond it RATE_LIMITED."""
    send_timeout: float = field(default=5.0, metadata=seconds())
    """Seconds one frame may wait for a client's socket before the client counts as stuck
    and is dropped as a slow consumer (close 4002)."""
    max_queue_bytes: int = field(default=1_048_576, metadata=count(1024))
    """Bytes queued for one slow client before it is dropped as a slow consumer (4002)."""
    session_ttl: float = field(default=60.0, metadata=seconds(zero=True))
    """Seconds a session (history, running reply) outlives an abnormal disconnect, so the
    client can resume it; a normal close (1000) ends the session at once."""
    max_sessions: int | None = field(default=10_000, metadata=count(1, optional=True))
    """Sessions held, attached or waiting for their client; to make room for a new one
    the oldest detached session ends, and when none is detached TOO_MANY_CONNECTIONS."""
    max_sessions_per_user: int | None = field(default=10, metadata=count(1, optional=True))
    """Sessions one user holds, attached or detached (the oldest detached ends first)."""
    max_detached_bytes: int | None = field(default=64 * 2**20,
                                           metadata=count(0, optional=True))
    """History bytes held for detached sessions in all; past it the oldest end first."""
    auth: AuthSpec | None = None
    """A token, a mapping of tokens to users, or a function token -> user (sync or async);
    None lets everyone in (users then name themselves with ``?user=``)."""
    auth_timeout: float = field(default=5.0, metadata=seconds())
    """Seconds a client without a handshake token has to send an ``auth`` message."""
    allowed_origins: Sequence[str] | None = None
    """Exact ``Origin`` values browsers may connect from (others get HTTP 403);
    clients that send no Origin (scripts, notebooks) are always allowed."""
    ssl: ssl_module.SSLContext | None = field(default=None, metadata=_SSL)
    """A server-side SSL context: the server then speaks ``wss://``."""
    metrics: bool = field(default=False, metadata=kind(bool, description="True or False"))
    """Serve Prometheus metrics at ``GET /metrics`` (``nbstream serve`` turns it on).
    Off by default in notebooks: counting every message costs a little per message."""
    backplane: str | Backplane = field(default="memory", metadata=_BACKPLANE)
    """``"memory"`` (this process only) or ``"redis://HOST:PORT/DB"`` to share fan-out,
    per-user counts and session history with other server processes."""
    backplane_limits: str = field(default="open", metadata=one_of("open", "closed"))
    """What per-user limits do while a shared backplane cannot count connections (Redis
    down or full): ``"open"`` admits, counting this process's connections only;
    ``"closed"`` refuses the users that have a limit (1013) until it counts again."""
    open_timeout: float = field(default=10.0, metadata=seconds())
    """Seconds a client has to complete the opening handshake (websockets)."""
    close_timeout: float = field(default=2.0, metadata=seconds())
    """Seconds to wait for the peer's close frame before dropping TCP (websockets)."""
    ping_interval: float | None = field(default=20.0, metadata=seconds(optional=True))
    """websockets' protocol-level keepalive ping, in seconds (None: off). The nbstream
    protocol only: the others' heartbeat (``heartbeat_interval``) is WebSocket pings."""
    ping_timeout: float | None = field(default=20.0, metadata=seconds(optional=True))
    """Seconds to wait for websockets' protocol-level pong before closing 1011."""
    compression: str | None = field(default=None, metadata=one_of(None, "deflate"))
    """``"deflate"`` for permessage-deflate; off by default (OWASP; it costs CPU)."""
    protocol: str | WireProtocol = field(
        default="nbstream", metadata=kind(str, WireProtocol, description=(
            '"nbstream", "json", "text", "raw" or a nbstream.wire.WireProtocol')))
    """How frames become messages: nbstream's envelope (welcome, resume, in-band
    heartbeats), or ``"json"``, ``"text"``, ``"raw"`` for clients of your own protocol
    (WebSocket pings for heartbeats, no resume)."""
    type_key: TypeKey = "type"
    """``protocol="json"``: the key holding a message's type, or a function of the value."""

    def __post_init__(self) -> None:
        validate(self, "serve")
        if self.protocol not in NAMES and isinstance(self.protocol, str):
            raise ValueError(f"serve(protocol={self.protocol!r}): must be one of "
                             f"{', '.join(NAMES)}, or a nbstream.wire.WireProtocol")
        if not (isinstance(self.type_key, str) or callable(self.type_key)):
            raise TypeError(f"serve(type_key={self.type_key!r}): must be a key (str) "
                            "or a function of the decoded value")
        if self.batch_max_size > 1 and self.protocol != "nbstream":
            raise ValueError(f"serve(batch_max_size={self.batch_max_size}): batching "
                             "wraps nbstream envelopes; it needs protocol='nbstream'")

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
        unknown(options, {f.name for f in fields(cls)}, "serve")
        return cls(**options)

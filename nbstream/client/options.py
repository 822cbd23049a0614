"""Every option of :func:`nbstream.connect` and :func:`nbstream.aconnect`, defined once.

:class:`ConnectOptions` holds each keyword, its default and its check; the
``ConnectKwargs`` TypedDict types ``**options`` for type checkers, and
:func:`signature_of` gives both functions the full signature for ``help()`` and
Jupyter's tooltips (tests/client/test_options.py keeps the three in step).
"""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypedDict

from nbstream.protocol import Backoff
from nbstream.validation import count, kind, one_of, seconds, unknown, validate
from nbstream.wire import NAMES, TypeKey, WireProtocol

DEFAULT_TIMEOUT = 30.0
"""Seconds any receive waits unless told otherwise."""

_PROTOCOL = kind(str, WireProtocol, description=(
    '"nbstream", "json", "text", "raw" or a nbstream.wire.WireProtocol'))
_SSL = kind(ssl_module.SSLContext, description="an ssl.SSLContext", optional=True)


@dataclass(frozen=True)
class ConnectOptions:
    """The keywords of :func:`nbstream.connect`; ``None`` switches a feature off."""

    protocol: str | WireProtocol = field(default="nbstream", metadata=_PROTOCOL)
    """``"nbstream"`` (welcome, resume, chat), or ``"json"``, ``"text"``, ``"raw"`` for
    servers of another protocol (see :mod:`nbstream.wire`)."""
    type_key: TypeKey = "type"
    """``protocol="json"``: the key holding a message's type, or a function of the value."""
    session_id: str | None = field(default=None, metadata=kind(
        str, description="a session id", optional=True))
    """Name (or resume) a session; the server makes one up otherwise."""
    user: str | None = field(default=None, metadata=kind(
        str, description="a user name", optional=True))
    """Who you are, for per-user limits, when the server has no ``auth``."""
    token: str | None = field(default=None, metadata=kind(
        str, description="a token", optional=True))
    """Credentials for a server with ``auth``."""
    token_in: Literal["header", "query", "message"] = field(
        default="header", metadata=one_of("header", "query", "message"))
    """Where the token goes: the ``Authorization: Bearer`` header, the ``token`` query
    parameter (browsers cannot set headers), or a first ``auth`` message."""
    timeout: float = field(default=DEFAULT_TIMEOUT, metadata=seconds())
    """Default seconds for every receive (``recv``, ``chat``, ``request``, iteration)."""
    open_timeout: float = field(default=10.0, metadata=seconds())
    """Seconds for the opening handshake."""
    max_message_bytes: int | None = field(default=16 * 2**20,
                                          metadata=count(64, optional=True))
    """Largest frame accepted from the server."""
    ssl: ssl_module.SSLContext | None = field(default=None, metadata=_SSL)
    """Client SSL context for ``wss://``; certificates are verified by default."""
    reconnect: bool | Backoff = field(default=True, metadata=kind(
        bool, Backoff, description="True, False or a nbstream.protocol.Backoff"))
    """Reconnect and resume after an abnormal close (nbstream protocol only)."""
    send_buffer: int = field(default=100, metadata=count(0))
    """Requests that may wait for a reconnect before ``send`` fails."""
    auto_pong: bool = field(default=True, metadata=kind(bool, description="True or False"))
    """Answer the server's in-band heartbeat pings (leave on)."""
    headers: Mapping[str, str] | None = field(default=None, metadata=kind(
        Mapping, description="a mapping of header names to values", optional=True))
    """Extra HTTP headers for the opening handshake."""
    subprotocols: Sequence[str] | None = field(default=None, metadata=kind(
        list, tuple, description="a list of subprotocol names", optional=True))
    """Subprotocols to offer (``client.subprotocol`` says which one was agreed)."""
    origin: str | None = field(default=None, metadata=kind(
        str, description="an Origin header value", optional=True))
    """The ``Origin`` header, for servers that check it."""
    heartbeat_interval: float | None = field(default=30.0, metadata=seconds(optional=True))
    """Seconds between WebSocket pings (protocols without in-band heartbeats; an
    nbstream server drives its own)."""
    heartbeat_timeout: float = field(default=10.0, metadata=seconds())
    """Seconds a WebSocket ping may wait for its pong before the client closes (1011)."""

    def __post_init__(self) -> None:
        validate(self, "connect")
        if isinstance(self.protocol, str) and self.protocol not in NAMES:
            raise ValueError(f"connect(protocol={self.protocol!r}): must be one of "
                             f"{', '.join(NAMES)}, or a nbstream.wire.WireProtocol")
        if not (isinstance(self.type_key, str) or callable(self.type_key)):
            raise TypeError(f"connect(type_key={self.type_key!r}): must be a key (str) "
                            "or a function of the decoded value")

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any]) -> ConnectOptions:
        """Build options from ``connect(**options)``, naming any unknown option."""
        unknown(options, {f.name for f in fields(cls)}, "connect")
        return cls(**options)

    @property
    def backoff(self) -> Backoff | None:
        """Reconnect delays, or None when reconnecting is off."""
        if isinstance(self.reconnect, Backoff):
            return self.reconnect
        return Backoff() if self.reconnect else None


class ConnectKwargs(TypedDict, total=False):
    """``**options`` of :func:`nbstream.connect`, for type checkers (see ConnectOptions)."""

    protocol: str | WireProtocol
    type_key: TypeKey
    session_id: str | None
    user: str | None
    token: str | None
    token_in: Literal["header", "query", "message"]
    timeout: float
    open_timeout: float
    max_message_bytes: int | None
    ssl: ssl_module.SSLContext | None
    reconnect: bool | Backoff
    send_buffer: int
    auto_pong: bool
    headers: Mapping[str, str] | None
    subprotocols: Sequence[str] | None
    origin: str | None
    heartbeat_interval: float | None
    heartbeat_timeout: float

"""Structured errors: what went wrong, how bad it is, and whether the stream goes on.

Every error the server reports travels as an ``error`` envelope whose ``data`` is
:meth:`StreamError.to_dict`. The same class is raised by the client library, so a
notebook user can ``except nbstream.StreamError as e`` and read ``e.code``.

Each :class:`ErrorCode` has a default severity, a default ``recoverable`` flag and, for
the errors that end a connection, the WebSocket close code the server uses (RFC 6455
section 7.4.1 and the IANA registry).
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple


class Severity(enum.StrEnum):
    """How serious an error is, from the seed's ``ErrorSeverity``."""

    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class CloseCode(enum.IntEnum):
    """The WebSocket close codes nbstream uses (RFC 6455 section 7.4.1, IANA registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    SESSION_TAKEN_OVER = 4001
    """nbstream: a newer connection with the same session id took the session over."""
    SLOW_CONSUMER = 4002
    """nbstream: the client read too slowly; its outgoing queue overflowed."""


class ErrorCode(enum.StrEnum):
    """Machine-readable error codes carried in ``error`` envelopes."""

    INVALID_MESSAGE = "INVALID_MESSAGE"
    """Bad JSON, a binary frame, a missing or unknown ``type``, or a wrong shape."""
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    """A frame exceeded ``max_message_bytes``; the connection closes with 1009."""
    RATE_LIMITED = "RATE_LIMITED"
    """Too many messages; ``details["retry_after"]`` says how many seconds to wait."""
    CONTEXT_EXHAUSTED = "CONTEXT_EXHAUSTED"
    """The session used up ``context_max_messages`` chats; open a new session."""
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
    """A server-wide or per-user connection limit was hit; closes with 1013."""
    UNAUTHORIZED = "UNAUTHORIZED"
    """Missing or invalid credentials; closes with 1008."""
    INTERNAL_ERROR = "INTERNAL_ERROR"
    """The handler raised; the server logged the traceback and closes with 1011."""
    HEARTBEAT_TIMEOUT = "HEARTBEAT_TIMEOUT"
    """The peer did not answer a ``ping`` within ``heartbeat_timeout``; closes with 1011."""
    SHUTTING_DOWN = "SHUTTING_DOWN"
    """The server is stopping and takes no new chats; reconnect later."""
    SLOW_CONSUMER = "SLOW_CONSUMER"
    """The client read too slowly and its outgoing queue overflowed; closes with 4002."""
    RECOVERY_FAILED = "RECOVERY_FAILED"
    """A reconnect could not replay everything missed; fetch your state again."""
    PROTOCOL_ERROR = "PROTOCOL_ERROR"
    """Raised by a client: the *server* sent something that breaks the protocol (a
    malformed envelope). INVALID_MESSAGE is the server's word for a client's bad frame."""
    INVALID_RECORDING = "INVALID_RECORDING"
    """Raised when reading a recording or a HAR file that cannot be read; ``details``
    name the file, entry, message or line."""


class _Default(NamedTuple):
    message: str
    severity: Severity
    recoverable: bool
    close_code: CloseCode | None


_DEFAULTS: dict[ErrorCode, _Default] = {
    ErrorCode.INVALID_MESSAGE: _Default("invalid message", Severity.WARNING, True, None),
    ErrorCode.MESSAGE_TOO_LARGE: _Default(
        "message too large", Severity.ERROR, False, CloseCode.MESSAGE_TOO_BIG
    ),
    ErrorCode.RATE_LIMITED: _Default("rate limit reached", Severity.WARNING, True, None),
    ErrorCode.CONTEXT_EXHAUSTED: _Default(
        "context window exhausted", Severity.ERROR, True, None
    ),
    ErrorCode.TOO_MANY_CONNECTIONS: _Default(
        "too many connections", Severity.ERROR, False, CloseCode.TRY_AGAIN_LATER
    ),
    ErrorCode.UNAUTHORIZED: _Default(
        "unauthorized", Severity.ERROR, False, CloseCode.POLICY_VIOLATION
    ),
    ErrorCode.INTERNAL_ERROR: _Default(
        "internal error", Severity.CRITICAL, False, CloseCode.INTERNAL_ERROR
    ),
    ErrorCode.HEARTBEAT_TIMEOUT: _Default(
        "heartbeat timeout", Severity.ERROR, False, CloseCode.INTERNAL_ERROR
    ),
    ErrorCode.SHUTTING_DOWN: _Default("server is shutting down", Severity.WARNING, True, None),
    ErrorCode.SLOW_CONSUMER: _Default(
        "client too slow: outgoing queue overflowed", Severity.ERROR, True,
        CloseCode.SLOW_CONSUMER),
    ErrorCode.RECOVERY_FAILED: _Default(
        "could not recover every missed message", Severity.ERROR, True, None),
    ErrorCode.PROTOCOL_ERROR: _Default(
        "the peer broke the protocol", Severity.ERROR, False, None),
    ErrorCode.INVALID_RECORDING: _Default(
        "not a recording nbstream can read", Severity.ERROR, True, None),
}


class StreamError(Exception):
    """A structured error: ``code``, ``message``, ``severity``, ``recoverable``, ``details``.

    Build one with just a code and let the defaults fill the rest::

        StreamError(ErrorCode.RATE_LIMITED, details={"retry_after": 0.25})

    After a recoverable error the connection stays open: wait (``retry_after``) or
    fix the message and send again. After an unrecoverable one the server closes
    the connection with :attr:`close_code`.
    """

    def __init__(
        self,
        code: ErrorCode | str,
        message: str | None = None,
        *,
        severity: Severity | str | None = None,
        recoverable: bool | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        known = _DEFAULTS.get(code) if isinstance(code, ErrorCode) else None
        if known is None and code in ErrorCode.__members__:
            code = ErrorCode(code)
            known = _DEFAULTS[code]
        self.code: str = str(code)
        self.message: str = message if message is not None else (
            known.message if known else self.code.lower().replace("_", " ")
        )
        self.severity: Severity = Severity(
            severity if severity is not None else (known.severity if known else Severity.ERROR)
        )
        self.recoverable: bool = (
            recoverable if recoverable is not None else (known.recoverable if known else False)
        )
        self.details: dict[str, Any] = dict(details or {})
        super().__init__(self.code, self.message)

    @property
    def close_code(self) -> int | None:
        """The close code the server uses after this error, or None if it stays open."""
        known = _DEFAULTS.get(ErrorCode(self.code)) if self.code in ErrorCode.__members__ else None
        return int(known.close_code) if known and known.close_code else None

    def to_dict(self) -> dict[str, Any]:
        """The ``data`` of an ``error`` envelope."""
        return {
            "code": self.code,
            "message": self.message,
            "severity": self.severity.value,
            "recoverable": self.recoverable,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: Any) -> StreamError:
        """Rebuild an error from an envelope's ``data``; tolerant of missing fields."""
        if not isinstance(data, dict):
            return cls(ErrorCode.INVALID_MESSAGE, f"malformed error payload: {data!r}")
        severity = data.get("severity")
        return cls(
            str(data.get("code", "UNKNOWN")),
            str(data.get("message", "")) or None,
            severity=severity if severity in Severity._value2member_map_ else None,
            recoverable=bool(data["recoverable"]) if "recoverable" in data else None,
            details=data.get("details") if isinstance(data.get("details"), dict) else None,
        )

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        retry_after = self.details.get("retry_after")
        if retry_after is not None:
            text += f" (retry after {retry_after:.3g} s)"
        return text

    def __repr__(self) -> str:
        return (
            f"StreamError(code={self.code!r}, message={self.message!r}, "
            f"severity={self.severity.value!r}, recoverable={self.recoverable!r}, "
            f"details={self.details!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StreamError):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = Exception.__hash__


class StreamClosed(ConnectionError):
    """The connection (or session) is closed; says with which code and reason, and the
    last error.

    ``code`` and ``reason`` are the WebSocket close code and reason; ``error`` is the
    structured error the server sent just before closing, if any (for example
    TOO_MANY_CONNECTIONS with close code 1013).
    """

    def __init__(self, code: int | None, reason: str, error: StreamError | None = None) -> None:
        self.code = code
        self.reason = reason
        self.error = error
        text = f"connection closed with code {code}"
        if reason:
            text += f" ({reason})"
        if error is not None:
            text += f" after {error}"
        super().__init__(text)

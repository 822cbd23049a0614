"""The error codes a load test writes in its rows (no imports beyond the standard
library, so that the command line reads them without loading pandas)."""

from __future__ import annotations

import enum


class LocalError(enum.StrEnum):
    """Error codes the load tester assigns itself (server codes are kept as sent)."""

    NOT_SENT = "NOT_SENT"
    """The message (or scenario iteration) was planned but its connection failed or
    closed before sending (running) it."""
    TIMEOUT = "TIMEOUT"
    """No final reply within ``timeout``; the connection is then closed (later replies
    could not be told apart) and its remaining messages are NOT_SENT."""
    CANCELLED = "CANCELLED"
    """The test was cancelled while the message was in flight."""
    CONNECTION_REFUSED = "CONNECTION_REFUSED"
    CONNECT_TIMEOUT = "CONNECT_TIMEOUT"
    CONNECT_FAILED = "CONNECT_FAILED"
    """Any other network error while connecting (DNS, reset, too many open files)."""
    HANDSHAKE_FAILED = "HANDSHAKE_FAILED"
    """The peer is not a WebSocket server, or the handshake broke off."""
    WORKER_LOST = "WORKER_LOST"
    """The Dask worker running this connection was lost mid-test: its rows are gone."""


def http_error(status: int) -> str:
    """The code of a handshake refused with HTTP ``status``: ``HTTP_503``."""
    return f"HTTP_{status}"


def closed_error(code: int | None) -> str:
    """The code of a connection the peer closed too early: ``CLOSED_1011``.

    1006 means the TCP connection ended without a close frame.
    """
    return f"CLOSED_{1006 if code is None else code}"

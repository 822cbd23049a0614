"""One closing policy for server and client: what each close code means, whether the
session lives on for a resume, and whose fault the close was.

Both sides read the same table, so the server keeps a session for ``session_ttl``
exactly when the client will try to resume it. A code that is not in the table is
final. The fault column follows h11: the side that *sent* the close blames itself
(:attr:`Blame.SENDER`: it failed), the peer (:attr:`Blame.RECEIVER`: the peer broke a
rule) or nobody; :func:`fault` turns that into local or remote for the side asking.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from nbstream.protocol.errors import CloseCode


class Blame(enum.Enum):
    """Who a close code blames, seen from the side that sent the close frame."""

    NOBODY = "nobody"
    SENDER = "sender"
    RECEIVER = "receiver"
    NETWORK = "network"


class Fault(enum.StrEnum):
    """Whose fault a close was, for the side that asks: ours, the peer's, or no one's."""

    LOCAL = "local"
    REMOTE = "remote"
    NETWORK = "network"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class CloseRule:
    """What one close code means."""

    code: int
    name: str
    resumable: bool
    """The server keeps the session for ``session_ttl`` and the client resumes it."""
    blame: Blame


ABNORMAL = 1006
"""No close frame at all: the TCP connection died (RFC 6455 section 7.1.5)."""

_RULES = (
    CloseRule(CloseCode.NORMAL_CLOSURE, "normal closure", False, Blame.NOBODY),
    CloseRule(CloseCode.GOING_AWAY, "going away", True, Blame.NOBODY),
    CloseRule(1002, "protocol error", False, Blame.RECEIVER),
    CloseRule(1003, "unsupported data", False, Blame.RECEIVER),
    CloseRule(ABNORMAL, "abnormal closure", True, Blame.NETWORK),
    CloseRule(1007, "invalid payload data", False, Blame.RECEIVER),
    CloseRule(CloseCode.POLICY_VIOLATION, "policy violation", False, Blame.RECEIVER),
    CloseRule(CloseCode.MESSAGE_TOO_BIG, "message too big", False, Blame.RECEIVER),
    CloseRule(CloseCode.INTERNAL_ERROR, "internal error", True, Blame.SENDER),
    CloseRule(1012, "service restart", True, Blame.NOBODY),
    CloseRule(CloseCode.TRY_AGAIN_LATER, "try again later", True, Blame.NOBODY),
    CloseRule(1014, "bad gateway", True, Blame.NETWORK),
    CloseRule(CloseCode.SESSION_TAKEN_OVER, "session taken over", False, Blame.NOBODY),
    CloseRule(CloseCode.SLOW_CONSUMER, "slow consumer", True, Blame.RECEIVER),
)

CLOSE_RULES: dict[int, CloseRule] = {rule.code: rule for rule in _RULES}
"""The policy, by close code. docs/architecture.md prints it."""


class CloseCause(enum.Enum):
    """Why the server closes a connection; decides whether its session lives on."""

    HEARTBEAT_TIMEOUT = "heartbeat timeout"
    SLOW_CONSUMER = "slow consumer"
    AUTH_TIMEOUT = "no credentials in time"
    UNAUTHORIZED = "invalid credentials"
    HANDLER_FAILED = "handler failed"
    SHUTDOWN = "server shutdown"
    TAKEN_OVER = "session taken over"
    DISCONNECTED = "disconnected by the server"


RESUMES_AFTER = frozenset({CloseCause.HEARTBEAT_TIMEOUT, CloseCause.SLOW_CONSUMER,
                           CloseCause.SHUTDOWN})
"""Closes of the server's own making after which the client may resume (elsewhere,
after a shutdown); the others (a failed handler, refused credentials, a takeover, a
deliberate disconnect) end the session."""


def session_outlives(code: int | None, cause: CloseCause | None) -> bool:
    """True when the session waits ``session_ttl`` for its client after this close.

    ``cause`` is why the server closed it, or None when the client or the network
    did: then the close code decides (:data:`CLOSE_RULES`).
    """
    if cause is not None:
        return cause in RESUMES_AFTER
    return resumable(code)


def rule_for(code: int | None) -> CloseRule:
    """The rule for ``code``; None (no close frame) counts as 1006, unknown codes as final."""
    if code is None:
        code = ABNORMAL
    rule = CLOSE_RULES.get(code)
    if rule is None:
        return CloseRule(code, "application-defined" if code >= 3000 else "unknown",
                         False, Blame.NOBODY)
    return rule


def resumable(code: int | None) -> bool:
    """True when a session closed with ``code`` waits for its client to come back."""
    return rule_for(code).resumable


def fault(code: int | None, *, sent_by_us: bool) -> Fault:
    """Whose fault a close with ``code`` was, for the side asking.

    ``sent_by_us`` says whether the asking side sent the close frame.
    """
    blame = rule_for(code).blame
    if blame is Blame.NOBODY:
        return Fault.NONE
    if blame is Blame.NETWORK:
        return Fault.NETWORK
    we_failed = (blame is Blame.SENDER) == sent_by_us
    return Fault.LOCAL if we_failed else Fault.REMOTE

"""The server side of one connection, without sockets: what to do with each message
and each tick.

:class:`ServerConnectionCore` holds the connection's state (a :class:`ConnState`,
changed only through :data:`TRANSITIONS`), its heartbeat, its rate limits and its
authentication deadline. The asyncio shell (``nbstream.server.connection``) feeds it
what arrives (:meth:`~ServerConnectionCore.receive`) and the time
(:meth:`~ServerConnectionCore.tick`), and carries out the actions it returns:
hand a request to the handler, send a control message, report an error, ping,
authenticate, close. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from nbstream.protocol.closing import CloseCause
from nbstream.protocol.envelope import Message
from nbstream.protocol.errors import CloseCode, ErrorCode, StreamError
from nbstream.protocol.heartbeat import Heartbeat, HeartbeatAction
from nbstream.protocol.ratelimit import TokenBucket


class Incoming(enum.Enum):
    """What a message from a client is, as its wire protocol classifies it."""

    REQUEST = "request"
    """For the handler: a chat, or any message of a protocol without control messages."""
    PING = "ping"
    """An in-band ping: answer with a pong at once."""
    PONG = "pong"
    """The answer to the server's in-band ping."""
    AUTH = "auth"
    """Credentials sent as a first message."""


class ConnState(enum.Enum):
    """Where a connection is in its life."""

    HANDSHAKE = "handshake"
    """The WebSocket is open; the server has not decided who it is yet."""
    AUTHENTICATING = "authenticating"
    """Waiting up to ``auth_timeout`` for an ``auth`` message."""
    OPEN = "open"
    """Requests go to the handler."""
    DRAINING = "draining"
    """The server is stopping: replies in flight finish, new requests are refused."""
    CLOSING = "closing"
    """A close was decided; what still arrives is ignored."""
    CLOSED = "closed"


class Trigger(enum.Enum):
    """What moves a connection from one state to another."""

    ACCEPT = "accept"
    REQUIRE_AUTH = "require auth"
    AUTHENTICATED = "authenticated"
    DRAIN = "drain"
    CLOSE = "close"
    CLOSED = "closed"


_LIVE = (ConnState.HANDSHAKE, ConnState.AUTHENTICATING, ConnState.OPEN, ConnState.DRAINING)

TRANSITIONS: dict[tuple[ConnState, Trigger], ConnState] = {
    (ConnState.HANDSHAKE, Trigger.ACCEPT): ConnState.OPEN,
    (ConnState.HANDSHAKE, Trigger.REQUIRE_AUTH): ConnState.AUTHENTICATING,
    (ConnState.AUTHENTICATING, Trigger.AUTHENTICATED): ConnState.OPEN,
    (ConnState.OPEN, Trigger.DRAIN): ConnState.DRAINING,
    **{(state, Trigger.CLOSE): ConnState.CLOSING for state in _LIVE},
    **{(state, Trigger.CLOSED): ConnState.CLOSED for state in (*_LIVE, ConnState.CLOSING)},
}
"""Every legal move; anything else raises :class:`IllegalTransition` (docs/architecture.md
draws this table)."""


class IllegalTransition(RuntimeError):
    """A caller asked for a move the table does not have: a bug in the shell."""


# -- actions: what the shell must do -------------------------------------------------------


class Dispatch(NamedTuple):
    """Hand ``message`` to the handler."""

    message: Message


class AnswerPing(NamedTuple):
    """Answer the in-band ``ping`` with the protocol's pong, now."""

    ping: Message


class Report(NamedTuple):
    """Send ``error`` to the client (in the session's stream once there is one)."""

    error: StreamError


class Ping(NamedTuple):
    """Send a heartbeat ping with this id (an envelope or a WebSocket ping)."""

    ping_id: str


class RoundTrip(NamedTuple):
    """A heartbeat round trip was measured (seconds)."""

    rtt: float


class Authenticate(NamedTuple):
    """Check ``token``; then call ``authenticated(user)`` or ``close`` as UNAUTHORIZED."""

    token: str


class Close(NamedTuple):
    """Close the connection with ``code`` and ``reason``; ``error`` goes out first."""

    code: int
    reason: str
    cause: CloseCause
    error: StreamError | None = None


Action = Dispatch | AnswerPing | Report | Ping | RoundTrip | Authenticate | Close

NO_ACTIONS: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class Limits:
    """The timing and rate settings of a connection (from the server's options)."""

    heartbeat_interval: float
    heartbeat_timeout: float
    auth_timeout: float
    send_timeout: float
    rate_limit: float | None = None
    rate_burst: float = 1.0


class ServerConnectionCore:
    """One connection's decisions. Pass ``now`` (monotonic seconds) to every call.

    ``user_bucket`` is shared by every connection of one user (per-user rate limit);
    ``new_id`` makes ping ids.
    """

    def __init__(self, limits: Limits, now: float, *, new_id: Callable[[], str],
                 user_bucket: TokenBucket | None = None) -> None:
        self.limits = limits
        self.state = ConnState.HANDSHAKE
        self.heartbeat = Heartbeat(limits.heartbeat_interval, limits.heartbeat_timeout, now)
        self.bucket = (TokenBucket(limits.rate_limit, limits.rate_burst, now)
                       if limits.rate_limit else None)
        self.user_bucket = user_bucket
        self.close_cause: CloseCause | None = None
        self._new_id = new_id
        self._auth_deadline: float | None = None

    def _move(self, trigger: Trigger) -> None:
        try:
            self.state = TRANSITIONS[self.state, trigger]
        except KeyError:
            raise IllegalTransition(f"cannot {trigger.value} a connection that is "
                                    f"{self.state.value}") from None

    # -- life cycle ------------------------------------------------------------------------

    def accept(self) -> None:
        """The server knows who this is (or needs not know): requests may flow."""
        self._move(Trigger.ACCEPT)

    def require_auth(self, now: float) -> None:
        """Wait for an ``auth`` message for ``auth_timeout`` seconds."""
        self._move(Trigger.REQUIRE_AUTH)
        self._auth_deadline = now + self.limits.auth_timeout

    def authenticated(self) -> None:
        """The ``auth`` message was valid."""
        self._move(Trigger.AUTHENTICATED)
        self._auth_deadline = None

    def drain(self) -> None:
        """The server is stopping: refuse new requests from now on."""
        if self.state is ConnState.OPEN:
            self._move(Trigger.DRAIN)

    def close(self, code: int, reason: str, cause: CloseCause,
              error: StreamError | None = None) -> Close | None:
        """Decide to close; the action to carry out, or None if already closing."""
        if self.state not in _LIVE:
            return None
        self._move(Trigger.CLOSE)
        self.close_cause = cause
        return Close(code, reason, cause, error)

    def closed(self) -> None:
        """The WebSocket is closed, whoever closed it."""
        if self.state is not ConnState.CLOSED:
            self._move(Trigger.CLOSED)

    # -- what arrives ----------------------------------------------------------------------

    def receive(self, kind: Incoming, message: Message, now: float) -> tuple[Action, ...]:
        """A valid message arrived; what to do about it."""
        state = self.state
        self.heartbeat.seen(now)
        if state is ConnState.AUTHENTICATING:
            if kind is Incoming.AUTH:
                return (Authenticate(message.data["token"]),)
            return self.refuse_credentials()
        if state is not ConnState.OPEN and state is not ConnState.DRAINING:
            return NO_ACTIONS
        if kind is Incoming.PONG:
            data = message.data
            ping_id = data.get("ping_id") if isinstance(data, dict) else None
            return self.pong(ping_id if isinstance(ping_id, str) else None, now)
        limited = self._rate_limited(now, message)
        if limited is not None:
            return (Report(limited),)
        if kind is Incoming.REQUEST:
            if state is ConnState.DRAINING:
                return (Report(StreamError(ErrorCode.SHUTTING_DOWN,
                                           details={"reply_to": message.id})),)
            return (Dispatch(message),)
        if kind is Incoming.PING:
            return (AnswerPing(message),)
        return (Report(StreamError(ErrorCode.INVALID_MESSAGE, "already authenticated",
                                   details={"reply_to": message.id})),)

    def invalid(self, error: StreamError, now: float) -> tuple[Action, ...]:
        """A frame arrived that its protocol rejects (``error`` says why)."""
        self.heartbeat.seen(now)
        if self.state is ConnState.AUTHENTICATING:
            return self.refuse_credentials()
        if self.state is ConnState.OPEN or self.state is ConnState.DRAINING:
            return (Report(error),)
        return NO_ACTIONS

    def pong(self, ping_id: str | None, now: float) -> tuple[Action, ...]:
        """A pong arrived (in band, or a WebSocket pong carrying ``ping_id``)."""
        rtt = self.heartbeat.pong(ping_id, now)
        return (RoundTrip(rtt),) if rtt is not None else NO_ACTIONS

    def refuse_credentials(self) -> tuple[Action, ...]:
        """The credentials were missing or wrong: close with UNAUTHORIZED (1008)."""
        error = StreamError(ErrorCode.UNAUTHORIZED, "valid credentials required")
        close = self.close(CloseCode.POLICY_VIOLATION, ErrorCode.UNAUTHORIZED,
                           CloseCause.UNAUTHORIZED, error)
        return (close,) if close is not None else NO_ACTIONS

    def _rate_limited(self, now: float, message: Message) -> StreamError | None:
        if self.bucket is None and self.user_bucket is None:
            return None
        for bucket, scope in ((self.bucket, "connection"), (self.user_bucket, "user")):
            if bucket is None:
                continue
            wait = bucket.take(now)
            if wait > 0:
                return StreamError(
                    ErrorCode.RATE_LIMITED,
                    f"more than {bucket.rate:g} messages/s on this {scope}",
                    details={"retry_after": round(wait, 4), "reply_to": message.id,
                             "scope": scope},
                )
        return None

    # -- time -------------------------------------------------------------------------------

    def tick(self, now: float, stuck_since: float | None = None) -> tuple[Action, ...]:
        """Time passed; ``stuck_since`` is when the socket stopped taking frames, if it did.

        Checks, in order: the authentication deadline, a slow consumer (a frame
        waiting longer than ``send_timeout``), then the heartbeat.
        """
        state = self.state
        if state is ConnState.AUTHENTICATING:
            if self._auth_deadline is not None and now >= self._auth_deadline:
                error = StreamError(ErrorCode.UNAUTHORIZED, "no credentials within "
                                    f"{self.limits.auth_timeout:g} s")
                close = self.close(CloseCode.POLICY_VIOLATION, ErrorCode.UNAUTHORIZED,
                                   CloseCause.AUTH_TIMEOUT, error)
                return (close,) if close is not None else NO_ACTIONS
            return NO_ACTIONS
        if state is not ConnState.OPEN and state is not ConnState.DRAINING:
            return NO_ACTIONS
        timeout = self.limits.send_timeout
        if stuck_since is not None and now - stuck_since > timeout:
            close = self.close(CloseCode.SLOW_CONSUMER,
                               f"slow consumer: stuck for over {timeout:g} s",
                               CloseCause.SLOW_CONSUMER)
            return (close,) if close is not None else NO_ACTIONS
        action = self.heartbeat.poll(now)
        if action is HeartbeatAction.SEND_PING:
            ping_id = self._new_id()
            self.heartbeat.ping_sent(ping_id, now)
            return (Ping(ping_id),)
        if action is HeartbeatAction.TIMED_OUT:
            close = self.close(CloseCode.INTERNAL_ERROR, "heartbeat timeout",
                               CloseCause.HEARTBEAT_TIMEOUT)
            return (close,) if close is not None else NO_ACTIONS
        return NO_ACTIONS

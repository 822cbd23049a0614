"""The backplane interface, and the in-process default.

A server calls its backplane when it records a message in a session's stream, when a
client presents a session id (to find out who holds that session and take it over),
when it broadcasts or sends to a user, when it admits or lets go of a user's
connection, and when a session ends. The in-process backplane keeps nothing (the
session's history lives in the process), delivers fan-out only locally and leaves
per-user limits to the server's own counts.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from nbstream.protocol import Message, StreamError


@dataclass(frozen=True)
class SessionRecord:
    """What another process knows of a session: enough to resume it here."""

    session_id: str
    user: str | None
    epoch: str
    next_offset: int
    frames: list[tuple[int, bytes]]
    """Recent messages as (offset, encoded frame), oldest first."""
    later: tuple[Delivery, ...] = ()
    """Fan-out for the session's user published after ``frames`` were taken: push
    these into the session, in order, right after restoring it."""


@dataclass(frozen=True)
class Delivery:
    """A broadcast (``user`` None) or a message for every connection of ``user``."""

    user: str | None
    message: Message


class ClaimOutcome(enum.Enum):
    """What :meth:`Backplane.claim` found out about a session."""

    UNKNOWN = "unknown"
    """No process shares this session (or the backplane cannot tell right now)."""
    REFUSED = "refused"
    """The session belongs to another user; nothing was changed anywhere."""
    MINE = "mine"
    """This process holds the session, and its copy is the current one."""
    ADOPTED = "adopted"
    """This process holds the session now; continue from :attr:`Claim.record`."""


@dataclass(frozen=True)
class Claim:
    """The answer of :meth:`Backplane.claim`."""

    outcome: ClaimOutcome
    record: SessionRecord | None = None
    """With ADOPTED: the session as the previous holder left it."""


@dataclass(frozen=True)
class BackplaneStats:
    """Counters and gauges of a shared backplane, for ``GET /metrics``."""

    up: bool
    """The shared store answers."""
    subscribed: bool
    """Fan-out from other processes is known to arrive (not merely subscribed)."""
    reconnects: int
    """Times the fan-out subscription was set up again after a failure."""
    queued: int
    """Writes waiting to be sent."""
    dropped: int
    """History writes lost since the start (queue full, or refused by the store)."""
    fanout_unsent: int
    """Publications of this process that could not be sent."""
    fanout_missed: int
    """Publications of other processes that never arrived here (sequence gaps)."""
    fanout_lag: float | None
    """Seconds the latest heartbeat of this process took through the fan-out channel."""
    fanout_silence: float
    """Seconds since fan-out was last known to work (this process's heartbeat came back)."""
    handoffs: int
    """Sessions taken over from other processes."""
    handoff_timeouts: int
    """Take-overs whose previous holder did not answer in time (crashed, cut off)."""


class Backplane(ABC):
    """Shared state of a deployment's server processes. One instance per server."""

    def __init__(self) -> None:
        self._deliver: Callable[[Delivery], None] | None = None
        self._release: Callable[[str], None] | None = None

    async def start(self, deliver: Callable[[Delivery], None], *,
                    history_max_messages: int = 100,
                    release: Callable[[str], None] | None = None) -> None:
        """Begin; ``deliver`` pushes fan-out from other processes to local sessions.

        ``history_max_messages`` is the server's per-session history bound: a shared
        history keeps about as many messages. ``release(session_id)`` is called when
        another process took a session over: drop the local copy at once (close its
        connection, stop its reply), without forgetting its shared history.
        """
        self._deliver = deliver
        self._release = release

    async def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Stop, releasing connections and this process's counts."""

    @property
    def shared(self) -> bool:
        """True when other processes may hold sessions of this deployment."""
        return False

    @abstractmethod
    def record(self, session_id: str, user: str | None, epoch: str, offset: int,
               frame: bytes) -> None:
        """Keep one outgoing message of a session; must not wait (queue it if needed)."""

    async def claim(self, session_id: str, user: str | None, *, have_local: bool) -> Claim:
        """Take the session over for ``user`` if it is shared; see :class:`Claim`.

        ``have_local`` says this process holds a copy (then MINE means: keep it).
        A claim by another user changes nothing and answers REFUSED.
        """
        return Claim(ClaimOutcome.UNKNOWN)

    @abstractmethod
    async def publish(self, delivery: Delivery) -> None:
        """Send ``delivery`` to the other processes (this one delivers locally itself)."""

    async def admit_user(self, user: str, connection: str, limit: int | None
                         ) -> StreamError | None:
        """Count ``connection`` of ``user`` in on every process, within ``limit``.

        Returns None when admitted, else the error to refuse the connection with.
        Only shared backplanes count; the server counts its own connections first.
        Call :meth:`leave` once when an admitted connection ends.
        """
        return None

    def leave(self, user: str, connection: str) -> None:  # noqa: B027 - nothing to count
        """An admitted connection of ``user`` ended; must not wait."""

    async def connections_elsewhere(self, user: str) -> int:
        """Connections ``user`` holds on other processes (0 when nothing is shared)."""
        return 0

    @abstractmethod
    def forget(self, session_id: str) -> None:
        """The session ended: drop its shared history; must not wait."""

    def health(self) -> dict[str, object]:
        """Backplane state for ``GET /health``."""
        return {"backplane": "memory"}

    def readiness(self) -> list[str]:
        """What keeps this process from doing its job now (``GET /ready``); [] when ready."""
        return []

    def stats(self) -> BackplaneStats | None:
        """Counters for ``GET /metrics``; None for a backplane that shares nothing."""
        return None


class MemoryBackplane(Backplane):
    """Everything in this process: the default, with nothing to install."""

    def record(self, session_id: str, user: str | None, epoch: str, offset: int,
               frame: bytes) -> None:
        return None

    async def publish(self, delivery: Delivery) -> None:
        return None

    def forget(self, session_id: str) -> None:
        return None

"""The backplane interface, and the in-process default.

A server calls its backplane at five points: when it records a message in a session's
stream, when a client resumes a session this process does not hold, when it
broadcasts or sends to a user, when it admits a user's connection, and when a session
ends. The in-process backplane does nothing at the first two (the session's
history lives in the process) and delivers fan-out only locally.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from nbstream.protocol import Message


@dataclass(frozen=True)
class SessionRecord:
    """What another process knows of a session: enough to resume it here."""

    session_id: str
    user: str | None
    epoch: str
    next_offset: int
    frames: list[tuple[int, bytes]]
    """Recent messages as (offset, encoded frame), oldest first."""


@dataclass(frozen=True)
class Delivery:
    """A broadcast (``user`` None) or a message for every connection of ``user``."""

    user: str | None
    message: Message


class Backplane(ABC):
    """Shared state of a deployment's server processes. One instance per server."""

    def __init__(self) -> None:
        self._deliver: Callable[[Delivery], None] | None = None

    async def start(self, deliver: Callable[[Delivery], None], *,
                    history_max_messages: int = 100) -> None:
        """Begin; ``deliver`` pushes fan-out from other processes to local sessions.

        ``history_max_messages`` is the server's per-session history bound: a shared
        history keeps about as many messages.
        """
        self._deliver = deliver

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

    @abstractmethod
    async def load(self, session_id: str) -> SessionRecord | None:
        """The session as another process left it, or None if nobody knows it."""

    @abstractmethod
    async def publish(self, delivery: Delivery) -> None:
        """Send ``delivery`` to the other processes (this one delivers locally itself)."""

    @abstractmethod
    async def connections_elsewhere(self, user: str) -> int:
        """Connections ``user`` holds on other processes."""

    @abstractmethod
    def count(self, user: str, delta: int) -> None:
        """This process gained (+1) or lost (-1) a connection of ``user``; must not wait."""

    @abstractmethod
    def forget(self, session_id: str) -> None:
        """The session ended: drop its shared history; must not wait."""

    def health(self) -> dict[str, object]:
        """Backplane state for ``GET /health``."""
        return {"backplane": "memory"}


class MemoryBackplane(Backplane):
    """Everything in this process: the default, with nothing to install."""

    def record(self, session_id: str, user: str | None, epoch: str, offset: int,
               frame: bytes) -> None:
        return None

    async def load(self, session_id: str) -> SessionRecord | None:
        return None

    async def publish(self, delivery: Delivery) -> None:
        return None

    async def connections_elsewhere(self, user: str) -> int:
        return 0

    def count(self, user: str, delta: int) -> None:
        return None

    def forget(self, session_id: str) -> None:
        return None

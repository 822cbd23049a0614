"""Who may connect: the server-wide and per-user connection limits.

Counts live here, apart from any socket, so the rules are tested on their own and
the server shell only asks :meth:`Admission.admit` and calls :meth:`Admission.release`
exactly once per admitted connection.
"""

from __future__ import annotations

from collections import Counter

from nbstream.protocol.errors import ErrorCode, StreamError


class Admission:
    """Connection counts, total and per user; ``None`` for a limit means no limit.

    Connections without a user (no auth, no ``user`` given) count towards
    ``max_connections`` only.
    """

    def __init__(self, max_connections: int | None, max_connections_per_user: int | None) -> None:
        self.max_connections = max_connections
        self.max_connections_per_user = max_connections_per_user
        self.total = 0
        self._per_user: Counter[str] = Counter()

    def admit(self, user: str | None, elsewhere: int = 0) -> StreamError | None:
        """Count a new connection in, or return the TOO_MANY_CONNECTIONS error to send.

        ``elsewhere`` is how many connections ``user`` has on other server processes
        (from the backplane); they count towards the per-user limit.
        """
        if self.max_connections is not None and self.total >= self.max_connections:
            return StreamError(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"the server is at its limit of {self.max_connections} connections",
                details={"limit": self.max_connections, "scope": "server"},
            )
        if user is not None and self.max_connections_per_user is not None:
            held = self._per_user[user] + elsewhere
            if held >= self.max_connections_per_user:
                return StreamError(
                    ErrorCode.TOO_MANY_CONNECTIONS,
                    f"user {user!r} already has {held} connections "
                    f"(max_connections_per_user={self.max_connections_per_user})",
                    details={"limit": self.max_connections_per_user, "scope": "user",
                             "user": user},
                )
        self.total += 1
        if user is not None:
            self._per_user[user] += 1
        return None

    def release(self, user: str | None) -> None:
        """Count an admitted connection out."""
        self.total -= 1
        if user is not None:
            self._per_user[user] -= 1
            if self._per_user[user] <= 0:
                del self._per_user[user]

    def count(self, user: str) -> int:
        """Open connections of one user."""
        return self._per_user[user]

    @property
    def users(self) -> int:
        """How many distinct users are connected."""
        return len(self._per_user)

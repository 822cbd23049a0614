"""Per-user connection counts across the nodes of a Redis backplane.

Each user has a set in Redis, ``{prefix}:conns:{user}``, of ``{node}/{connection}``
members. A connection is admitted by one Lua script that counts the members of live
nodes and adds its own only if the user is under the limit: concurrent handshakes on
any number of nodes cannot pass the limit together. Members of a node whose liveness
key expired (a crash) are dropped when counted. Removing a member, and adding one
where no limit applies, go through the writer (both are safe to repeat).
"""

from __future__ import annotations

import asyncio
from typing import Literal

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from nbstream.backplane.link import UNREACHABLE, RedisLink
from nbstream.backplane.scripts import Keys
from nbstream.backplane.writer import Scripts, Writer
from nbstream.protocol import ErrorCode, StreamError

LimitFailure = Literal["open", "closed"]
"""What a per-user limit does while Redis cannot count: ``"open"`` counts this process's
connections only (more than the limit may get in), ``"closed"`` refuses the user's
connections (TOO_MANY_CONNECTIONS, 1013) until Redis counts again."""


class Members:
    """This node's connections in the users' sets, and admission within a limit."""

    def __init__(self, redis: aioredis.Redis, scripts: Scripts, keys: Keys, node: str,
                 link: RedisLink, writer: Writer, *, timeout: float,
                 limits: LimitFailure) -> None:
        self._redis = redis
        self._scripts = scripts
        self._keys = keys
        self._node = node
        self._link = link
        self._writer = writer
        self.timeout = timeout
        self.limits: LimitFailure = limits
        self._held: dict[str, set[str]] = {}
        """User -> this node's members in the user's set."""

    async def admit(self, user: str, connection: str, limit: int | None) -> StreamError | None:
        """Count the connection in, atomically within ``limit`` across every live node.

        While Redis cannot count, :attr:`limits` decides: "open" admits (this node's
        own count was checked by the server), "closed" refuses.
        """
        member = f"{self._node}/{connection}"
        self._held.setdefault(user, set()).add(member)
        if limit is None:
            self._writer.membership(user, member, True)
            return None
        if not self._link.down:
            try:
                async with asyncio.timeout(2 * self.timeout):
                    admitted, held = await self._scripts.admit(
                        keys=[self._keys.conns(user)],
                        args=[member, limit, self._keys.node_prefix])
            except UNREACHABLE as exc:
                self._link.failed("counting connections", exc)
            except RedisError as exc:
                self._link.log.error("admit", "Redis could not count %r's connections: %s",
                                     user, exc)
            else:
                self._link.reached()
                if admitted:
                    return None
                self._forget(user, member)
                return StreamError(
                    ErrorCode.TOO_MANY_CONNECTIONS,
                    f"user {user!r} already has {held} connections "
                    f"(max_connections_per_user={limit})",
                    details={"limit": limit, "scope": "user", "user": user})
        if self.limits == "closed":
            self.leave(user, connection)  # in case Redis counted it and the answer was lost
            self._link.log.warning("limits-closed", "per-user limits cannot be counted across "
                                   "processes now: refusing connections of limited users")
            return StreamError(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"cannot count {user!r}'s connections across servers now; try again later",
                details={"limit": limit, "scope": "user", "user": user, "retry_after": 1.0})
        self._link.log.warning("limits-open", "per-user limits count this process only until "
                               "Redis counts again")
        self._writer.membership(user, member, True)
        return None

    def leave(self, user: str, connection: str) -> None:
        """An admitted connection ended: take it out of the user's set."""
        member = f"{self._node}/{connection}"
        self._forget(user, member)
        self._writer.membership(user, member, False)

    def _forget(self, user: str, member: str) -> None:
        members = self._held.get(user)
        if members is not None:
            members.discard(member)
            if not members:
                del self._held[user]

    async def elsewhere(self, user: str) -> int:
        """Connections of ``user`` on other live nodes; 0 if Redis cannot say."""
        try:
            async with asyncio.timeout(2 * self.timeout):
                held = await self._scripts.elsewhere(keys=[self._keys.conns(user)],
                                                     args=[self._node, self._keys.node_prefix])
        except (*UNREACHABLE, RedisError):
            return 0
        return int(held)

    def rejoin(self) -> None:
        """Redis lost this node's members (a restart): add them all again."""
        for user, members in self._held.items():
            for member in members:
                self._writer.membership(user, member, True)

    def remove_all(self, pipe: Pipeline) -> None:
        """Add the removal of every member of this node to ``pipe`` (at shutdown)."""
        for user, members in self._held.items():
            pipe.srem(self._keys.conns(user), *members)

"""The Redis backplane's background writer: what the server must not wait for.

History appends, forgets, releases of sessions to other nodes and changes of this
node's connection memberships queue here; one task sends them, in order, in
pipelines. History writes wait in a bounded queue (beyond it they are dropped and
counted); releases and memberships are never dropped. A batch that fails because
Redis is unreachable is sent again once it is back: every command in it is safe to
repeat (a repeated append only adds stream entries the reader skips).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from nbstream.backplane.link import UNREACHABLE, RedisLink
from nbstream.backplane.scripts import Keys
from nbstream.protocol import Backoff

_RETRY = Backoff(base=0.1, cap=2.0)
"""Delays between attempts to reach Redis again."""

_BATCH = 512
"""Queued writes sent to Redis in one pipeline."""


@dataclass(frozen=True, slots=True)
class _Record:
    session_id: str
    tenure: str
    user: str | None
    epoch: str
    offset: int
    frame: bytes


@dataclass(frozen=True, slots=True)
class _Forget:
    session_id: str
    tenure: str


@dataclass(frozen=True, slots=True)
class _Release:
    session_id: str
    tenure: str
    announcement: bytes


_Op = _Record | _Forget | _Release


@dataclass(frozen=True)
class Scripts:
    """The backplane's Lua scripts, registered on its client."""

    append: AsyncScript
    forget: AsyncScript
    release: AsyncScript
    claim: AsyncScript
    admit: AsyncScript
    elsewhere: AsyncScript

    async def load(self, redis: aioredis.Redis) -> None:
        """Load every script again (Redis forgets them when it restarts)."""
        for script in (self.append, self.forget, self.release, self.claim, self.admit,
                       self.elsewhere):
            await redis.script_load(script.script)


class Writer:
    """Queue writes and send them in the background (:meth:`run_forever`).

    Every session write carries the writer's *tenure* (see
    :mod:`nbstream.backplane.scripts`).

    Args:
        on_lost: Called with (session id, tenure) when Redis refused a write because
            another tenure owns the session now.
    """

    def __init__(self, redis: aioredis.Redis, scripts: Scripts, keys: Keys, link: RedisLink,
                 *, timeout: float, session_expiry: float, max_queue: int,
                 on_lost: Callable[[str, str], None]) -> None:
        self._redis = redis
        self._scripts = scripts
        self._keys = keys
        self._link = link
        self.timeout = timeout
        self.session_expiry = session_expiry
        self.max_queue = max_queue
        self.history_max_messages = 100
        self._on_lost = on_lost
        self._queue: deque[_Op] = deque()
        self._memberships: dict[tuple[str, str], bool] = {}
        """(user, member) -> True to add, False to remove, not sent yet."""
        self._sending = 0
        self._wake = asyncio.Event()
        self.idle = asyncio.Event()
        """Set while nothing waits to be written."""
        self.closed = False

    @property
    def queued(self) -> int:
        """Writes waiting for Redis, the batch being sent included."""
        return len(self._queue) + len(self._memberships) + self._sending

    def record(self, session_id: str, tenure: str, user: str | None, epoch: str,
               offset: int, frame: bytes) -> None:
        """Append one message to the session's shared history (dropped if the queue is full)."""
        if len(self._queue) >= self.max_queue:
            self._link.drop(1)
            self._link.warn_once("queue", f"{self.max_queue} history writes wait for Redis; "
                                          "dropping more until it catches up")
            return
        self._push(_Record(session_id, tenure, user, epoch, offset, frame))

    def forget(self, session_id: str, tenure: str) -> None:
        """Delete the session's shared history, if ``tenure`` still owns it."""
        if len(self._queue) < self.max_queue:
            self._push(_Forget(session_id, tenure))

    def release(self, session_id: str, tenure: str, announcement: bytes) -> None:
        """Give the session up after the writes queued so far; then publish ``announcement``."""
        self._push(_Release(session_id, tenure, announcement))

    def membership(self, user: str, member: str, present: bool) -> None:
        """Add (``present``) or remove ``member`` in the user's connection set."""
        self._memberships[user, member] = present
        self._kick()

    def _push(self, op: _Op) -> None:
        if not self.closed:
            self._queue.append(op)
            self._kick()

    def _kick(self) -> None:
        self.idle.clear()
        self._wake.set()

    async def run_forever(self) -> None:
        """Send what is queued, in order; wait for Redis while it is away."""
        attempt = refusals = 0
        batch: list[_Op] = []
        members: dict[tuple[str, str], bool] = {}
        while True:
            if not batch and not members:
                while not self._queue and not self._memberships:
                    self._wake.clear()
                    self.idle.set()
                    await self._wake.wait()
                batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
                members, self._memberships = self._memberships, {}
                self._sending = len(batch) + len(members)
            try:
                async with asyncio.timeout(4 * self.timeout):
                    refused = await self._write(batch, members)
            except UNREACHABLE as exc:
                self._link.failed("writing session history", exc)
                with contextlib.suppress(TimeoutError):  # until Redis is back, or a while
                    await asyncio.wait_for(self._link.up.wait(), _RETRY.delay(attempt))
                attempt += 1
                continue
            self._link.reached()
            attempt = self._sending = 0
            batch, members = [], {}
            refusals = refusals + 1 if refused else 0
            if refused:  # Redis answers but refuses (out of memory): do not spin
                await asyncio.sleep(_RETRY.delay(refusals))

    async def _write(self, batch: Sequence[_Op], members: dict[tuple[str, str], bool]) -> bool:
        """Send one batch; if Redis forgot the scripts (a restart), load them and again.

        Returns True when Redis refused some of it.
        """
        pipe, plan = self._pipeline(batch, members)
        results = await pipe.execute(raise_on_error=False)
        if any(isinstance(result, NoScriptError) for result in results):
            await self._scripts.load(self._redis)
            pipe, plan = self._pipeline(batch, members)
            results = await pipe.execute(raise_on_error=False)
        refused = False
        for (kind, subject), result in zip(plan, results, strict=True):
            refused |= self._settle(kind, subject, result)
        return refused

    def _settle(self, kind: str, subject: Any, result: Any) -> bool:
        """Act on one command's result; True if Redis refused it."""
        if isinstance(result, RedisError):
            if kind == "append":
                self._link.drop(subject[2])
                self._link.log.error("refused", "Redis refused %d history write(s): %s",
                                     subject[2], result)
            elif kind == "member":  # try again with the next batch
                self._memberships.setdefault(subject[:2], subject[2])
            else:
                self._link.log.error("refused-" + kind, "Redis refused a %s: %s", kind, result)
            return True
        if kind == "append" and result == 0:
            self._on_lost(subject[0], subject[1])
        elif kind == "append" and result == -1:
            self._link.log.warning("foreign", "session %s is another user's in Redis; its "
                                   "messages here are not shared", subject[0])
        return False

    def _pipeline(self, batch: Sequence[_Op], members: dict[tuple[str, str], bool]
                  ) -> tuple[Pipeline, list[tuple[str, Any]]]:
        """The commands of one batch, and what each one was (kind, subject)."""
        pipe = self._redis.pipeline(transaction=False)
        plan: list[tuple[str, Any]] = []
        groups: dict[str, list[_Record]] = {}

        def append(group: list[_Record]) -> None:
            last = group[-1]
            args: list[str | bytes | int] = [
                last.tenure, last.epoch, msgspec.json.encode(last.user), last.offset + 1,
                _ms(self.session_expiry), self.history_max_messages,
                "1" if group[0].offset == 0 else "0"]
            for op in group:
                args += (op.offset, op.frame)
            plan.append(("append", (last.session_id, last.tenure, len(group))))
            pipe.evalsha(self._scripts.append.sha, 2, *self._keys.session(last.session_id),
                         *args)

        for op in batch:
            pending = groups.get(op.session_id)
            if pending and (not isinstance(op, _Record) or op.offset == 0
                            or op.tenure != pending[-1].tenure):
                append(groups.pop(op.session_id))
            if isinstance(op, _Forget):
                plan.append(("forget", (op.session_id,)))
                pipe.evalsha(self._scripts.forget.sha, 2, *self._keys.session(op.session_id),
                             op.tenure)
            elif isinstance(op, _Release):
                plan.append(("release", (op.session_id,)))
                pipe.evalsha(self._scripts.release.sha, 1, self._keys.session(op.session_id)[1],
                             op.tenure, self._keys.fanout, op.announcement)
            else:
                groups.setdefault(op.session_id, []).append(op)
        for group in groups.values():
            append(group)
        for (user, member), present in members.items():
            plan.append(("member", (user, member, present)))
            if present:
                pipe.sadd(self._keys.conns(user), member)
            else:
                pipe.srem(self._keys.conns(user), member)
        return pipe, plan


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))

"""The Redis backplane: several server processes act as one deployment.

``serve(backplane="redis://HOST:PORT/DB")`` creates a :class:`RedisBackplane`. Every
server process (every *node*, with a random id) then shares through Redis (keys in
:mod:`nbstream.backplane.scripts`): its liveness, each session's recent history and
owner, each user's connections, and one pub/sub channel for fan-out, heartbeats and
session hand-overs (:mod:`nbstream.backplane.fanout`).

Nothing the server does per message waits for Redis: history writes queue
(:mod:`nbstream.backplane.writer`). A handshake waits for :meth:`RedisBackplane.claim`
(a client presenting a session id) and :meth:`RedisBackplane.admit_user` (a per-user
limit), ``broadcast()`` for :meth:`RedisBackplane.publish`, each for at most twice
``timeout`` (a take-over from a live node also waits for its answer, at most
``timeout``). While Redis is unreachable the backplane degrades instead of hanging,
and recovers by itself when Redis is back. docs/scaling.md says what survives what.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("the Redis backplane needs redis-py: pip install 'nbstream[redis]'"
                      ) from exc

from nbstream.backplane import scripts
from nbstream.backplane.base import (
    Backplane,
    BackplaneStats,
    Claim,
    ClaimOutcome,
    Delivery,
    SessionRecord,
)
from nbstream.backplane.fanout import Fanout
from nbstream.backplane.handoff import Adoption
from nbstream.backplane.link import UNREACHABLE, RedisLink, redacted
from nbstream.backplane.members import LimitFailure, Members
from nbstream.backplane.scripts import Keys
from nbstream.backplane.writer import Scripts, Writer
from nbstream.protocol import StreamError

logger = logging.getLogger(__name__)

DROP_WINDOW = 10.0
"""Seconds a node stays not ready after it dropped a history write."""

_user_decoder = msgspec.json.Decoder(str | None)


class RedisBackplane(Backplane):
    """Fan-out, per-user counts and session history shared through one Redis.

    Create it with ``serve(backplane="redis://HOST:PORT/DB")``, or construct it to
    change a default and pass the instance as ``backplane=`` (one per server).

    Args:
        url: ``redis://[:password@]host:port/db``, ``rediss://`` (TLS) or ``unix://``.
        prefix: Start of every key and channel; servers sharing a prefix act as one.
        timeout: Seconds one connect or read may take before it counts as failed;
            a call waits at most twice as long (it is retried once, on a new connection).
        node_ttl: Seconds after which a silent node (a crashed process) no longer
            counts towards per-user limits and no longer holds its sessions.
        session_expiry: Seconds a session's shared history outlives its last message
            when no process ends it (a crashed process).
        max_queue: History writes held while Redis is slow or away; beyond it they
            are dropped and counted in ``health()["dropped"]``.
        limits: What per-user limits do while Redis cannot count (unreachable, or
            refusing writes when out of memory): see :data:`LimitFailure`.
    """

    def __init__(self, url: str, *, prefix: str = "nbstream", timeout: float = 1.0,
                 node_ttl: float = 6.0, session_expiry: float = 3600.0,
                 max_queue: int = 10_000, limits: LimitFailure = "open") -> None:
        super().__init__()
        if limits not in ("open", "closed"):
            raise ValueError(f'limits must be "open" or "closed", got {limits!r}')
        self.limits = limits
        """What per-user limits do while Redis cannot count ("open" or "closed")."""
        self.url = url
        self.node = uuid.uuid4().hex[:12]
        """This process's id in Redis (random, new at every start)."""
        self.prefix = prefix
        self.timeout = timeout
        self.node_ttl = node_ttl
        self.session_expiry = session_expiry
        self.max_queue = max_queue
        self._keys = Keys(prefix)
        self._link = RedisLink(url)
        self._redis = aioredis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),  # once more on a fresh connection, then fail
        )
        register = self._redis.register_script
        self._scripts = Scripts(register(scripts.APPEND), register(scripts.FORGET),
                                register(scripts.RELEASE), register(scripts.CLAIM),
                                register(scripts.ADMIT), register(scripts.ELSEWHERE))
        self._writer = Writer(self._redis, self._scripts, self._keys, self._link,
                              timeout=timeout, session_expiry=session_expiry,
                              max_queue=max_queue, on_lost=self._lost)
        self._fanout = Fanout(self._redis, self._keys.fanout, self.node, self._link,
                              timeout=timeout, on_release=self._release_requested)
        self._members = Members(self._redis, self._scripts, self._keys, self.node, self._link,
                                self._writer, timeout=timeout, limits=limits)
        self._tenures: dict[str, str] = {}
        """Session -> this node's tenure of it (see scripts)."""
        self._tenure_count = 0
        self.handoffs = 0
        self.handoff_timeouts = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    @property
    def shared(self) -> bool:
        return True

    # -- start and stop ---------------------------------------------------------------

    async def start(self, deliver: Callable[[Delivery], None], *,
                    history_max_messages: int = 100,
                    release: Callable[[str], None] | None = None) -> None:
        """Register this node and subscribe to fan-out.

        Raises:
            ConnectionError: if Redis cannot be reached now; start redis-server or
                fix the URL (once started, the backplane rides out Redis outages).
        """
        await super().start(deliver, history_max_messages=history_max_messages,
                            release=release)
        self._writer.history_max_messages = max(1, history_max_messages)
        try:
            async with asyncio.timeout(2 * self.timeout):
                await self._redis.set(self._keys.node(self.node), _label(),
                                      px=_ms(self.node_ttl))
        except (*UNREACHABLE, RedisError) as exc:
            await self._redis.aclose()
            raise ConnectionError(f"cannot reach Redis at {redacted(self.url)} ({exc}); "
                                  "start redis-server or fix the backplane URL") from None
        self._link.up.set()
        self._fanout.start(deliver)
        self._tasks = [asyncio.create_task(self._writer.run_forever(), name="nbstream-writer"),
                       asyncio.create_task(self._beat_forever(), name="nbstream-node-beat")]
        try:
            await asyncio.wait_for(self._fanout.subscribed.wait(), 2 * self.timeout)
        except TimeoutError:
            logger.warning("not yet subscribed to fan-out on %s; retrying in the background",
                           redacted(self.url))
        logger.info("Redis backplane: node %s on %s", self.node, redacted(self.url))

    async def close(self) -> None:
        """Write what is queued (for at most ``timeout``), leave, close the connections."""
        if self._closed or not self._tasks:  # closed, or never started
            self._closed = True
            return
        self._closed = True
        try:
            await asyncio.wait_for(self._writer.idle.wait(), self.timeout)
        except TimeoutError:
            logger.warning("closing with %s write(s) not sent to Redis", self._writer.queued)
        self._writer.closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, self._fanout.stop(), return_exceptions=True)
        try:
            async with asyncio.timeout(self.timeout):
                pipe = self._redis.pipeline(transaction=False)
                pipe.delete(self._keys.node(self.node))
                self._members.remove_all(pipe)
                await pipe.execute()
        except (*UNREACHABLE, RedisError) as exc:
            logger.warning("could not remove node %s from Redis (%s); it expires in %g s",
                           self.node, exc, self.node_ttl)
        await self._redis.aclose()

    # -- health, readiness, metrics -------------------------------------------------------

    def health(self) -> dict[str, object]:
        """Redis "ok" or "down", fan-out "ok" or "silent", queued, dropped and lost writes."""
        now = time.monotonic()
        return {"backplane": "redis", "redis": "down" if self._link.down else "ok",
                "fanout": "ok" if self._fanout.watch.working(now) else "silent",
                "node": self.node, "queued": self._writer.queued,
                "dropped": self._link.dropped, "unsent": self._fanout.unsent,
                "missed": self._fanout.gaps.missed}

    def readiness(self) -> list[str]:
        """Why this node cannot do its job now: Redis away, fan-out silent, writes lost."""
        now = time.monotonic()
        problems = []
        if self._link.down:
            problems.append(f"Redis at {self._link.url} is unreachable")
        elif not self._fanout.watch.working(now):
            problems.append("fan-out from other processes is not arriving "
                            f"(silent for {self._fanout.watch.silence(now):.1f} s)")
        dropped_at = self._link.dropped_at
        if dropped_at is not None and now - dropped_at < DROP_WINDOW:
            problems.append(f"history writes are being dropped ({self._link.dropped} "
                            "since the start)")
        if self._writer.queued > self.max_queue // 2:
            problems.append(f"{self._writer.queued} writes wait for Redis")
        return problems

    def stats(self) -> BackplaneStats:
        now = time.monotonic()
        fanout = self._fanout
        return BackplaneStats(
            up=not self._link.down, subscribed=fanout.watch.working(now),
            reconnects=fanout.reconnects, queued=self._writer.queued,
            dropped=self._link.dropped, fanout_unsent=fanout.unsent,
            fanout_missed=fanout.gaps.missed, fanout_lag=fanout.watch.lag,
            fanout_silence=fanout.watch.silence(now), handoffs=self.handoffs,
            handoff_timeouts=self.handoff_timeouts)

    # -- session history -----------------------------------------------------------------

    def record(self, session_id: str, user: str | None, epoch: str, offset: int,
               frame: bytes) -> None:
        if not self._closed:
            self._writer.record(session_id, self._tenure(session_id), user, epoch, offset,
                                frame)

    def forget(self, session_id: str) -> None:
        tenure = self._tenures.pop(session_id, None)
        if tenure is not None and not self._closed:
            self._writer.forget(session_id, tenure)

    def _tenure(self, session_id: str) -> str:
        """This node's tenure of the session; a new one for a session new here."""
        tenure = self._tenures.get(session_id)
        if tenure is None:
            tenure = self._tenures[session_id] = self._new_tenure()
        return tenure

    def _new_tenure(self) -> str:
        self._tenure_count += 1
        return f"{self.node}.{self._tenure_count}"

    async def claim(self, session_id: str, user: str | None, *, have_local: bool) -> Claim:
        """Take the session over for ``user``; see :class:`~nbstream.backplane.Claim`.

        A live node that owns it is asked to give it up first (it writes what it has,
        then answers); one that does not answer within ``timeout`` is passed over.
        """
        if self._link.down:
            self._link.warn_once("claim", "Redis is down: sessions resumed on another "
                                          "process start afresh until it is back")
            return Claim(ClaimOutcome.UNKNOWN)
        tenure = self._new_tenure()
        adoption = self._fanout.adopt(session_id, user)
        try:
            found = await self._claim(session_id, tenure, user, have_local, force=False)
            if found is not None and found[0] == b"held":
                owner = found[1].decode()
                if not await self._fanout.ask_release(adoption, owner, self.timeout):
                    self.handoff_timeouts += 1
                    logger.warning("node %s did not give session %s up within %g s; taking "
                                   "it over from Redis", owner.partition(".")[0], session_id,
                                   self.timeout)
                found = await self._claim(session_id, tenure, user, have_local, force=True)
        except UNREACHABLE as exc:
            self._link.failed(f"taking session {session_id} over", exc)
            return Claim(ClaimOutcome.UNKNOWN)
        except RedisError as exc:
            self._link.log.error("claim", "could not look session %s up in Redis: %s",
                                 session_id, exc)
            return Claim(ClaimOutcome.UNKNOWN)
        finally:
            self._fanout.done(adoption)
        self._link.reached()
        return self._claimed(session_id, tenure, found, adoption)

    async def _claim(self, session_id: str, tenure: str, user: str | None, have_local: bool,
                     *, force: bool) -> Any:
        current = self._tenures.get(session_id, "") if have_local else ""
        async with asyncio.timeout(2 * self.timeout):
            return await self._scripts.claim(
                keys=self._keys.session(session_id),
                args=[tenure, msgspec.json.encode(user), current, "1" if force else "0",
                      self._keys.node_prefix])

    def _claimed(self, session_id: str, tenure: str, found: Any, adoption: Adoption) -> Claim:
        if found is None:
            return Claim(ClaimOutcome.UNKNOWN)
        if found[0] == b"refused":
            return Claim(ClaimOutcome.REFUSED)
        if found[0] == b"mine":
            return Claim(ClaimOutcome.MINE)
        raw_meta, entries = found[1], found[2]
        meta = dict(zip(raw_meta[::2], raw_meta[1::2], strict=True))
        next_offset = int(meta[b"next"])
        self._tenures[session_id] = tenure
        self.handoffs += 1
        record = SessionRecord(session_id, _user_decoder.decode(meta[b"user"]),
                               meta[b"epoch"].decode(), next_offset,
                               _contiguous(entries, next_offset), adoption.deliveries())
        return Claim(ClaimOutcome.ADOPTED, record)

    def _release_requested(self, session_id: str, requester: str, tenure: str) -> None:
        """Another node takes the session over: drop the copy here, write, then say so."""
        tenure = self._tenures.pop(session_id, tenure)
        self._drop_copy(session_id)
        self._writer.release(session_id, tenure, self._fanout.released(session_id, requester))

    def _lost(self, session_id: str, tenure: str) -> None:
        """Redis refused a write of ``tenure``: another node took the session over."""
        if self._tenures.get(session_id) == tenure:
            del self._tenures[session_id]
            logger.info("session %s is held by another process now; dropping the copy here",
                        session_id)
            self._drop_copy(session_id)

    def _drop_copy(self, session_id: str) -> None:
        if self._release is None:
            return
        try:
            self._release(session_id)
        except Exception:
            logger.exception("dropping the copy of session %s failed", session_id)

    # -- per-user connections -------------------------------------------------------------

    async def admit_user(self, user: str, connection: str, limit: int | None
                         ) -> StreamError | None:
        """Count the connection in, atomically within ``limit`` across every live node.

        While Redis cannot count, ``limits`` decides (see :data:`LimitFailure`).
        """
        return await self._members.admit(user, connection, limit)

    def leave(self, user: str, connection: str) -> None:
        if not self._closed:
            self._members.leave(user, connection)

    async def connections_elsewhere(self, user: str) -> int:
        """Connections of ``user`` on other live nodes (for inspection); 0 if Redis is down."""
        return await self._members.elsewhere(user)

    # -- fan-out ---------------------------------------------------------------------------

    async def publish(self, delivery: Delivery) -> None:
        """Send ``delivery`` to the other nodes; counted as unsent while Redis is down."""
        await self._fanout.publish(delivery)

    # -- liveness --------------------------------------------------------------------------

    async def _beat_forever(self) -> None:
        """Keep this node's liveness key; register it and its connections again if lost.

        PEXPIRE works while Redis refuses writes (out of memory), so a node stays
        alive, and its connections counted, through that.
        """
        key, every, ttl = self._keys.node(self.node), self.node_ttl / 3, _ms(self.node_ttl)
        while True:
            await asyncio.sleep(every if not self._link.down else min(every, 0.5))
            try:
                async with asyncio.timeout(2 * self.timeout):
                    if not await self._redis.pexpire(key, ttl):
                        # Redis restarted, or this node was silent past node_ttl.
                        await self._redis.set(key, _label(), px=ttl)
                        self._members.rejoin()
            except UNREACHABLE as exc:
                self._link.failed("refreshing this node's liveness", exc)
            except RedisError as exc:
                self._link.log.error("liveness", "could not refresh node %s in Redis: %s",
                                     self.node, exc)
            else:
                self._link.reached()


def _contiguous(entries: list[Any], next_offset: int) -> list[tuple[int, bytes]]:
    """The run of stream entries that ends at ``next_offset - 1`` without a gap.

    Entries of a write repeated after a failure, or before a gap left by dropped
    writes, fall outside it.
    """
    frames: dict[int, bytes] = {}
    for _, fields in entries:
        values = dict(zip(fields[::2], fields[1::2], strict=True))
        frames[int(values[b"o"])] = values[b"f"]
    run: list[tuple[int, bytes]] = []
    offset = next_offset - 1
    while offset in frames:
        run.append((offset, frames[offset]))
        offset -= 1
    run.reverse()
    return run


def _label() -> str:
    """The value of a node's liveness key: where the process runs, for people reading Redis."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))

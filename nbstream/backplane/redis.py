"""The Redis backplane: several server processes act as one deployment.

``serve(backplane="redis://HOST:PORT/DB")`` creates a :class:`RedisBackplane`. Every
server process (every *node*, with a random id) then shares through Redis:

* ``{prefix}:node:{node}``: the node is alive; refreshed every ``node_ttl / 3`` seconds,
  expires ``node_ttl`` seconds after the last refresh.
* ``{prefix}:s:{session}``: a Redis Stream of the session's recent messages (fields
  ``o`` offset and ``f`` frame), trimmed to about the server's ``history_max_messages``.
* ``{prefix}:s:{session}:meta``: a hash of the session's user, epoch, next offset and
  owner node. Both session keys expire ``session_expiry`` seconds after the last write.
* ``{prefix}:u:{user}``: a hash of node -> open connections of the user on that node.
* channel ``{prefix}:fanout``: broadcasts and ``send_to_user``, from every node to all.

Nothing the server does waits for Redis except :meth:`RedisBackplane.load` (a client
resuming a session this process does not hold), :meth:`RedisBackplane.publish` and
:meth:`RedisBackplane.connections_elsewhere`, each for at most twice ``timeout``.
While Redis is unreachable the backplane degrades instead of hanging:
history writes wait in a bounded queue (then are dropped and counted), fan-out to
other processes is dropped, per-user limits count this process only (fail open),
resumes on another process start afresh (``recovered: false``). It recovers by
itself when Redis is back. docs/scaling.md says what survives what.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from nbstream.backplane.base import Backplane, Delivery, SessionRecord
from nbstream.protocol import Backoff, Message

try:
    import redis.asyncio as aioredis
    from redis.asyncio.client import Pipeline
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError, RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("the Redis backplane needs redis-py: pip install 'nbstream[redis]'"
                      ) from exc

logger = logging.getLogger(__name__)

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
"""Failures that mean Redis cannot be reached (as opposed to Redis refusing a command)."""

_RETRY = Backoff(base=0.1, cap=2.0)
"""Delays between attempts to reach Redis again (subscriber, writer)."""

_BATCH = 512
"""Queued writes sent to Redis in one pipeline."""

# KEYS: stream, meta. ARGV: node, epoch, user (JSON), next offset, expiry (ms), maxlen,
# fresh ("1": the batch starts the session's history at offset 0), then offset, frame...
# A node that lost the session to another (which loaded it since) writes nothing.
_APPEND = """
local owner = redis.call('HGET', KEYS[2], 'owner')
local fresh = ARGV[7] == '1'
if owner and owner ~= ARGV[1] and not fresh then return 0 end
if fresh then redis.call('DEL', KEYS[1]) end
for i = 8, #ARGV, 2 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[6], '*', 'o', ARGV[i], 'f', ARGV[i + 1])
end
redis.call('HSET', KEYS[2], 'owner', ARGV[1], 'epoch', ARGV[2], 'user', ARGV[3],
           'next', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
"""

# KEYS: stream, meta. ARGV: node. Claims the session for this node; nil if unknown.
_LOAD = """
local meta = redis.call('HGETALL', KEYS[2])
if #meta == 0 then return nil end
redis.call('HSET', KEYS[2], 'owner', ARGV[1])
return {meta, redis.call('XRANGE', KEYS[1], '-', '+')}
"""

# KEYS: stream, meta. ARGV: node. Only the owner deletes: another node may have adopted it.
_FORGET = """
local owner = redis.call('HGET', KEYS[2], 'owner')
if owner and owner ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""

# KEYS: user hash. ARGV: this node, node key prefix. Sums other live nodes' counts and
# removes the counts of nodes whose liveness key expired (crashed processes).
_ELSEWHERE = """
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  if fields[i] ~= ARGV[1] then
    if redis.call('EXISTS', ARGV[2] .. fields[i]) == 1 then
      total = total + tonumber(fields[i + 1])
    else
      redis.call('HDEL', KEYS[1], fields[i])
    end
  end
end
return total
"""


@dataclass(frozen=True, slots=True)
class _Record:
    session_id: str
    user: str | None
    epoch: str
    offset: int
    frame: bytes


@dataclass(frozen=True, slots=True)
class _Forget:
    session_id: str


class _Publication(msgspec.Struct, frozen=True):
    """What goes over the fan-out channel."""

    node: str
    user: str | None
    message: Message


_publication_decoder = msgspec.json.Decoder(_Publication)
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
            counts towards per-user limits.
        session_expiry: Seconds a session's shared history outlives its last message
            when no process ends it (a crashed process).
        max_queue: History writes held while Redis is slow or away; beyond it they
            are dropped and counted in ``health()["dropped"]``.
    """

    def __init__(self, url: str, *, prefix: str = "nbstream", timeout: float = 1.0,
                 node_ttl: float = 6.0, session_expiry: float = 3600.0,
                 max_queue: int = 10_000) -> None:
        super().__init__()
        self.url = url
        self.node = uuid.uuid4().hex[:12]
        """This process's id in Redis (random, new at every start)."""
        self.prefix = prefix
        self.timeout = timeout
        self.node_ttl = node_ttl
        self.session_expiry = session_expiry
        self.max_queue = max_queue
        self._redis = aioredis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),  # once more on a fresh connection, then fail
            health_check_interval=max(1, round(node_ttl)),
        )
        self._append = self._redis.register_script(_APPEND)
        self._load = self._redis.register_script(_LOAD)
        self._forget = self._redis.register_script(_FORGET)
        self._elsewhere = self._redis.register_script(_ELSEWHERE)
        self._history_max_messages = 100
        self._queue: deque[_Record | _Forget] = deque()
        self._counts: dict[str, int] = {}
        self._dirty: set[str] = set()
        """Users whose count on this node Redis does not have yet."""
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        """Set while nothing waits to be written."""
        self._sending = 0
        """Writes in the pipeline being sent."""
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._down_since: float | None = None
        self._up = asyncio.Event()
        """Set while Redis answers; the writer waits for it before trying again."""
        self._warned: set[str] = set()
        self._dropped = 0
        self._closed = False

    @property
    def shared(self) -> bool:
        return True

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # -- start and stop ---------------------------------------------------------------

    async def start(self, deliver: Callable[[Delivery], None], *,
                    history_max_messages: int = 100) -> None:
        """Register this node and subscribe to fan-out.

        Raises:
            ConnectionError: if Redis cannot be reached now; start redis-server or
                fix the URL (once started, the backplane rides out Redis outages).
        """
        await super().start(deliver, history_max_messages=history_max_messages)
        self._history_max_messages = max(1, history_max_messages)
        try:
            async with asyncio.timeout(2 * self.timeout):
                await self._redis.set(self._key("node", self.node), _label(),
                                      px=self._ttl_ms(self.node_ttl))
        except (*_UNREACHABLE, RedisError) as exc:
            await self._redis.aclose()
            raise ConnectionError(f"cannot reach Redis at {_redacted(self.url)} ({exc}); "
                                  "start redis-server or fix the backplane URL") from None
        self._up.set()
        self._tasks = [asyncio.create_task(run(), name=f"nbstream-redis-{run.__name__}")
                       for run in (self._write_forever, self._beat_forever,
                                   self._subscribe_forever)]
        try:
            await asyncio.wait_for(self._subscribed.wait(), 2 * self.timeout)
        except TimeoutError:
            logger.warning("not yet subscribed to fan-out on %s; retrying in the background",
                           _redacted(self.url))
        logger.info("Redis backplane: node %s on %s", self.node, _redacted(self.url))

    async def close(self) -> None:
        """Write what is queued (for at most ``timeout``), leave, close the connections."""
        if self._closed or not self._tasks:  # closed, or never started
            self._closed = True
            return
        self._closed = True
        try:
            await asyncio.wait_for(self._idle.wait(), self.timeout)
        except TimeoutError:
            logger.warning("closing with %s write(s) not sent to Redis",
                           self.health()["queued"])
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            async with asyncio.timeout(self.timeout):
                pipe = self._redis.pipeline(transaction=False)
                pipe.delete(self._key("node", self.node))
                for user in self._counts:
                    pipe.hdel(self._key("u", user), self.node)
                await pipe.execute()
        except (*_UNREACHABLE, RedisError) as exc:
            logger.warning("could not remove node %s from Redis (%s); it expires in %g s",
                           self.node, exc, self.node_ttl)
        await self._redis.aclose()

    # -- health -------------------------------------------------------------------------

    def health(self) -> dict[str, object]:
        """Redis "ok" or "down", this node's id, writes waiting for Redis, writes lost."""
        return {"backplane": "redis", "redis": "ok" if self._down_since is None else "down",
                "node": self.node, "queued": len(self._queue) + len(self._dirty) + self._sending,
                "dropped": self._dropped}

    def _failed(self, doing: str, exc: BaseException) -> None:
        """Note that Redis is unreachable; logs once per outage."""
        self._up.clear()
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.error("Redis at %s is unreachable while %s (%s: %s); fan-out to other "
                         "processes and shared history are suspended until it is back",
                         _redacted(self.url), doing, type(exc).__name__, exc)
        else:
            logger.debug("Redis still unreachable while %s: %s", doing, exc)

    def _reached(self) -> None:
        self._up.set()
        if self._down_since is not None:
            logger.warning("Redis at %s is reachable again after %.1f s (%d history "
                           "write(s) dropped so far)", _redacted(self.url),
                           time.monotonic() - self._down_since, self._dropped)
            self._down_since = None
            self._warned.clear()

    def _warn_once(self, topic: str, text: str) -> None:
        """Log ``text`` once per outage."""
        if topic not in self._warned:
            self._warned.add(topic)
            logger.warning(text)

    @staticmethod
    def _ttl_ms(seconds: float) -> int:
        return max(1, round(seconds * 1000))

    # -- session history -----------------------------------------------------------------

    def record(self, session_id: str, user: str | None, epoch: str, offset: int,
               frame: bytes) -> None:
        self._enqueue(_Record(session_id, user, epoch, offset, frame))

    def forget(self, session_id: str) -> None:
        self._enqueue(_Forget(session_id))

    def _enqueue(self, op: _Record | _Forget) -> None:
        if self._closed:
            return
        if len(self._queue) >= self.max_queue:
            self._dropped += 1
            self._warn_once("queue", f"{self.max_queue} history writes wait for Redis; "
                                     "dropping more until it catches up")
            return
        self._queue.append(op)
        self._kick()

    async def load(self, session_id: str) -> SessionRecord | None:
        """The session as Redis has it, now owned by this node; None if unknown or down."""
        if self._down_since is not None:
            self._warn_once("load", "Redis is down: resumed sessions start afresh here")
            return None
        try:
            async with asyncio.timeout(2 * self.timeout):
                found = await self._load(keys=self._session_keys(session_id),
                                         args=[self.node])
        except _UNREACHABLE as exc:
            self._failed(f"loading session {session_id}", exc)
            return None
        except RedisError as exc:
            logger.error("could not load session %s from Redis: %s", session_id, exc)
            return None
        self._reached()
        if found is None:
            return None
        raw_meta, entries = found
        meta = dict(zip(raw_meta[::2], raw_meta[1::2], strict=True))
        next_offset = int(meta[b"next"])
        return SessionRecord(session_id, _user_decoder.decode(meta[b"user"]),
                             meta[b"epoch"].decode(), next_offset,
                             _contiguous(entries, next_offset))

    def _session_keys(self, session_id: str) -> list[str]:
        stream = self._key("s", session_id)
        return [stream, stream + ":meta"]

    # -- per-user counts -----------------------------------------------------------------

    def count(self, user: str, delta: int) -> None:
        held = self._counts.get(user, 0) + delta
        if held > 0:
            self._counts[user] = held
        else:
            self._counts.pop(user, None)
        self._dirty.add(user)
        self._kick()

    async def connections_elsewhere(self, user: str) -> int:
        """Connections of ``user`` on other live nodes; 0 while Redis is down (fail open)."""
        if self._down_since is None:
            try:
                async with asyncio.timeout(2 * self.timeout):
                    total = await self._elsewhere(keys=[self._key("u", user)],
                                                  args=[self.node, self._key("node", "")])
            except _UNREACHABLE as exc:
                self._failed("counting connections", exc)
            except RedisError as exc:
                logger.error("could not count %r's connections in Redis: %s", user, exc)
            else:
                self._reached()
                return int(total)
        self._warn_once("count", "Redis is down: per-user connection limits count this "
                                 "process only until it is back")
        return 0

    # -- fan-out ---------------------------------------------------------------------------

    async def publish(self, delivery: Delivery) -> None:
        """Send ``delivery`` to the other nodes; dropped (and logged) while Redis is down."""
        if self._down_since is not None:
            self._warn_once("publish", "Redis is down: broadcasts and send_to_user reach "
                                       "this process only until it is back")
            return
        payload = msgspec.json.encode(_Publication(self.node, delivery.user, delivery.message))
        try:
            async with asyncio.timeout(2 * self.timeout):
                await self._redis.publish(self._key("fanout"), payload)
        except _UNREACHABLE as exc:
            self._failed("publishing", exc)
        except RedisError as exc:
            logger.error("could not publish to other processes: %s", exc)
        else:
            self._reached()

    async def _subscribe_forever(self) -> None:
        """Receive other nodes' publications, resubscribing (with backoff) after failures."""
        attempt = 0
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._key("fanout"))
                self._subscribed.set()
                self._reached()
                attempt = 0
                while True:
                    item = await pubsub.get_message(ignore_subscribe_messages=True,
                                                    timeout=1.0)
                    if item is not None:
                        self._on_publication(item["data"])
            except _UNREACHABLE as exc:
                self._failed("listening for fan-out", exc)
            except RedisError as exc:
                logger.error("fan-out subscription failed: %s", exc)
            finally:
                self._subscribed.clear()
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(_RETRY.delay(attempt))
            attempt += 1

    def _on_publication(self, payload: bytes) -> None:
        try:
            publication = _publication_decoder.decode(payload)
        except msgspec.DecodeError as exc:
            logger.warning("ignoring a malformed fan-out message: %s", exc)
            return
        if publication.node == self.node or self._deliver is None:
            return
        try:
            self._deliver(Delivery(publication.user, publication.message))
        except Exception:
            logger.exception("delivering a message from another process failed")

    # -- background writing ----------------------------------------------------------------

    def _kick(self) -> None:
        """There is something to write: wake the writer."""
        self._idle.clear()
        self._wake.set()

    async def _write_forever(self) -> None:
        """Send queued history writes and count changes, in order, in pipelines.

        A batch that fails because Redis is unreachable is sent again once it is back
        (every command in it is safe to repeat); meanwhile new writes queue up.
        """
        attempt = 0
        batch: list[_Record | _Forget] = []
        users: set[str] = set()
        while True:
            if not batch and not users:
                while not self._queue and not self._dirty:
                    self._wake.clear()
                    self._idle.set()
                    await self._wake.wait()
                batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
                users, self._dirty = self._dirty, set()
                self._sending = len(batch) + len(users)
            try:
                async with asyncio.timeout(4 * self.timeout):
                    await self._write(batch, users)
            except _UNREACHABLE as exc:
                self._failed("writing session history", exc)
                with contextlib.suppress(TimeoutError):  # until Redis is back, or a while
                    await asyncio.wait_for(self._up.wait(), _RETRY.delay(attempt))
                attempt += 1
                continue
            except RedisError as exc:
                lost = sum(isinstance(op, _Record) for op in batch)
                self._dropped += lost
                logger.error("Redis refused %d history write(s): %s", lost, exc)
            else:
                self._reached()
            attempt = self._sending = 0
            batch, users = [], set()

    async def _write(self, batch: Sequence[_Record | _Forget], users: set[str]) -> None:
        """Send one batch in a pipeline; if Redis forgot the scripts (a restart), again."""
        pipe, appended = self._pipeline(batch, users)
        try:
            results = await pipe.execute()
        except NoScriptError:
            for script in (self._append, self._forget):
                await self._redis.script_load(script.script)
            pipe, appended = self._pipeline(batch, users)
            results = await pipe.execute()
        for index, session_id in appended:
            if results[index] == 0:
                logger.info("session %s is held by another process now; its messages "
                            "here are no longer shared", session_id)

    def _pipeline(self, batch: Sequence[_Record | _Forget], users: set[str]
                  ) -> tuple[Pipeline, list[tuple[int, str]]]:
        """The commands of one batch, and (index, session) of each history append."""
        pipe = self._redis.pipeline(transaction=False)
        appended: list[tuple[int, str]] = []
        groups: dict[str, list[_Record]] = {}

        def append(group: list[_Record]) -> None:
            last = group[-1]
            args: list[str | bytes | int] = [
                self.node, last.epoch, msgspec.json.encode(last.user), last.offset + 1,
                self._ttl_ms(self.session_expiry), self._history_max_messages,
                "1" if group[0].offset == 0 else "0"]
            for op in group:
                args += (op.offset, op.frame)
            appended.append((len(pipe), last.session_id))
            pipe.evalsha(self._append.sha, 2, *self._session_keys(last.session_id), *args)

        for op in batch:
            pending = groups.get(op.session_id)
            if pending and (isinstance(op, _Forget) or op.offset == 0):
                append(groups.pop(op.session_id))
            if isinstance(op, _Forget):
                pipe.evalsha(self._forget.sha, 2, *self._session_keys(op.session_id), self.node)
            else:
                groups.setdefault(op.session_id, []).append(op)
        for group in groups.values():
            append(group)
        for user in users:
            held = self._counts.get(user, 0)
            if held:
                pipe.hset(self._key("u", user), self.node, held)
            else:
                pipe.hdel(self._key("u", user), self.node)
        return pipe, appended

    # -- liveness --------------------------------------------------------------------------

    async def _beat_forever(self) -> None:
        """Refresh this node's liveness key; rewrite its counts if Redis lost them."""
        key, every = self._key("node", self.node), self.node_ttl / 3
        while True:
            await asyncio.sleep(every if self._down_since is None else min(every, 0.5))
            try:
                async with asyncio.timeout(2 * self.timeout):
                    ttl = self._ttl_ms(self.node_ttl)
                    if not await self._redis.set(key, _label(), px=ttl, xx=True):
                        # Redis restarted, or this node was silent past node_ttl.
                        await self._redis.set(key, _label(), px=ttl)
                        self._dirty.update(self._counts)
                        self._kick()
            except _UNREACHABLE as exc:
                self._failed("refreshing this node's liveness", exc)
            except RedisError as exc:
                logger.error("could not refresh node %s in Redis: %s", self.node, exc)
            else:
                self._reached()


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


def _redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))

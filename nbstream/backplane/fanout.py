"""Fan-out between the processes of a deployment, over one Redis pub/sub channel.

Four kinds of messages share the channel ``{prefix}:fanout``:

* a **publication** (a broadcast or a ``send_to_user``), numbered by its publisher;
* a **heartbeat** of every process every :data:`BEAT_INTERVAL`, carrying the number up
  to which its publications are settled: receivers count what never arrived
  (:class:`~nbstream.backplane.tracking.GapCounter`), and a process that does not get
  its own heartbeat back within :data:`DEADLINE` knows its subscription is silent and
  subscribes again (:class:`~nbstream.backplane.tracking.FanoutWatch`);
* a **release** request: node R asks node O, the owner of a session, to give it up;
* **released**: O gave the session up, after every history write it had queued.

Redis delivers a channel's messages to every subscriber in one order, the sender's
own included. That order makes a hand-over exact: a publication ahead of R's request
reached O while O held the session, so it is in the history R loads; one behind it is
kept by R (:class:`Adoption`) and pushed into the session once R holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from nbstream.backplane.base import Delivery
from nbstream.backplane.handoff import Adoption
from nbstream.backplane.link import UNREACHABLE, RedisLink
from nbstream.backplane.tracking import FanoutWatch, GapCounter, Sequencer
from nbstream.protocol import Backoff, Message

BEAT_INTERVAL = 1.0
"""Seconds between two heartbeats of a process on the fan-out channel."""
DEADLINE = 3.0
"""Seconds a heartbeat may take to come back before the subscription counts as silent."""
_POLL = 0.25
"""Seconds one read of the subscription waits before the watch is looked at."""
_RETRY = Backoff(base=0.1, cap=2.0)
"""Delays between attempts to subscribe again."""


class _Publication(msgspec.Struct, frozen=True, tag="p"):
    node: str
    seq: int
    user: str | None
    message: Message


class _Beat(msgspec.Struct, frozen=True, tag="b"):
    node: str
    settled: int
    stamp: float
    """The sender's monotonic clock when it sent the beat (read by the sender only)."""


class _Release(msgspec.Struct, frozen=True, tag="r"):
    node: str
    session: str
    owner: str
    """The owner's tenure, ``{node}.{n}``."""


class _Released(msgspec.Struct, frozen=True, tag="x"):
    node: str
    session: str
    to: str
    cut: int
    """The former owner's last publication pushed into its copy of the session."""


_decoder = msgspec.json.Decoder(_Publication | _Beat | _Release | _Released)


class Fanout:
    """Publish and receive fan-out; watch the subscription; carry hand-over messages.

    Args:
        redis: The backplane's client.
        channel: The channel's name.
        node: This process's id.
        link: Where reachability is reported.
        timeout: Seconds a call to Redis waits (twice this, with its one retry).
        on_release: Called with (session, requester, tenure) when another process asks
            this one to give a session up; it must queue the release, announced with
            :meth:`released`.
    """

    def __init__(self, redis: aioredis.Redis, channel: str, node: str, link: RedisLink, *,
                 timeout: float, on_release: Callable[[str, str, str], None]) -> None:
        self._redis = redis
        self.channel = channel
        self.node = node
        self._link = link
        self.timeout = timeout
        self._on_release = on_release
        self._deliver: Callable[[Delivery], None] = lambda delivery: None
        self.sequencer = Sequencer()
        self.gaps = GapCounter()
        self.watch = FanoutWatch(DEADLINE)
        self.subscribed = asyncio.Event()
        self.unsent = 0
        """Publications of this process that could not be sent."""
        self.reconnects = 0
        """Subscriptions set up again after the first."""
        self._ever_subscribed = False
        self._adoptions: set[Adoption] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, deliver: Callable[[Delivery], None]) -> None:
        """Subscribe and send heartbeats in the background; ``deliver`` gets other's fan-out."""
        self._deliver = deliver
        self._tasks = [asyncio.create_task(self._subscribe_forever(), name="nbstream-fanout"),
                       asyncio.create_task(self._beat_forever(), name="nbstream-fanout-beat")]

    async def stop(self) -> None:
        """Stop listening and beating."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- publishing -----------------------------------------------------------------------

    async def publish(self, delivery: Delivery) -> None:
        """Send ``delivery`` to the other processes; counted as unsent when it cannot be."""
        seq = self.sequencer.next()
        for adoption in self._adoptions:
            if adoption.wants(delivery.user):  # pushed here before the session is: keep it
                adoption.entries.append(("", seq, delivery))
        try:
            if self._link.down:
                self.unsent += 1
                self._link.warn_once("publish", "Redis is down: broadcasts and send_to_user "
                                                "reach this process only until it is back")
                return
            publication = _Publication(self.node, seq, delivery.user, delivery.message)
            if await self._send(msgspec.json.encode(publication), "publishing") is False:
                self.unsent += 1
        finally:
            self.sequencer.done(seq)

    async def _send(self, payload: bytes, doing: str) -> bool:
        """PUBLISH ``payload``; False (reported to the link) when it could not be sent."""
        try:
            async with asyncio.timeout(2 * self.timeout):
                await self._redis.publish(self.channel, payload)
        except UNREACHABLE as exc:
            self._link.failed(doing, exc)
            return False
        except RedisError as exc:
            self._link.log.error(doing, "Redis refused %s: %s", doing, exc)
            return False
        self._link.reached()
        return True

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(BEAT_INTERVAL)
            stamp = time.monotonic()
            self.watch.sending(stamp)
            beat = _Beat(self.node, self.sequencer.settled, stamp)
            if not await self._send(msgspec.json.encode(beat), "sending the fan-out heartbeat"):
                self.watch.not_sent(stamp)

    # -- handing sessions over --------------------------------------------------------------

    def adopt(self, session: str, user: str | None) -> Adoption:
        """Start keeping fan-out for ``session`` that this process is about to take over."""
        adoption = Adoption(session, user)
        self._adoptions.add(adoption)
        return adoption

    def done(self, adoption: Adoption) -> None:
        """The take-over ended (the session is held here now, or not at all)."""
        self._adoptions.discard(adoption)

    async def ask_release(self, adoption: Adoption, owner: str, wait: float) -> bool:
        """Ask the node of tenure ``owner`` to give the session up.

        True once it did, False after ``wait`` seconds (or if the request could not be
        sent): then take what Redis has.
        """
        adoption.restart()
        request = _Release(self.node, adoption.session, owner)
        if not await self._send(msgspec.json.encode(request), "asking for a session"):
            adoption.armed = True
            return False
        try:
            await asyncio.wait_for(adoption.released.wait(), wait)
        except TimeoutError:
            adoption.armed = True  # the owner is gone or cut off: take what Redis has
            return False
        return True

    def released(self, session: str, to: str) -> bytes:
        """The message that tells ``to`` this process gave ``session`` up (send it last)."""
        return msgspec.json.encode(_Released(self.node, session, to, self.sequencer.last))

    # -- receiving ----------------------------------------------------------------------------

    async def _subscribe_forever(self) -> None:
        """Receive the channel, subscribing again (with backoff) after failure or silence."""
        attempt = 0
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                async with asyncio.timeout(2 * self.timeout):
                    await pubsub.subscribe(self.channel)
                self.watch.subscribed(time.monotonic())
                self.reconnects += self._ever_subscribed
                self._ever_subscribed = True
                self.subscribed.set()
                self._link.reached()
                attempt = 0
                await self._listen(pubsub)
                self._link.log.error("silent", "fan-out subscription on %s is silent: a "
                                     "heartbeat sent over %g s ago did not come back; "
                                     "subscribing again", self._link.url, DEADLINE)
            except UNREACHABLE as exc:
                self._link.failed("listening for fan-out", exc)
            except RedisError as exc:
                self._link.log.error("subscribe", "fan-out subscription failed: %s", exc)
            finally:
                self.subscribed.clear()
                self.watch.unsubscribed()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.timeout):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(_RETRY.delay(attempt))
            attempt += 1

    async def _listen(self, pubsub: Any) -> None:
        """Dispatch what arrives; return when the subscription is silent."""
        while True:
            item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_POLL)
            if item is not None:
                self._dispatch(item["data"])
            elif self.watch.silent(time.monotonic()):  # everything that arrived was read
                return

    def _dispatch(self, payload: bytes) -> None:
        try:
            item = _decoder.decode(payload)
        except msgspec.DecodeError as exc:
            self._link.log.warning("malformed", "ignoring a malformed fan-out message: %s", exc)
            return
        now = time.monotonic()
        if isinstance(item, _Publication):
            self._received(item, now)
        elif isinstance(item, _Beat):
            if item.node == self.node:
                self.watch.beat_back(item.stamp, now)
            else:
                self.gaps.beat(item.node, item.settled, now)
        elif isinstance(item, _Release):
            if item.owner.partition(".")[0] == self.node:
                self._on_release(item.session, item.node, item.owner)
            if item.node == self.node:
                for adoption in self._adoptions:
                    if adoption.session == item.session:
                        adoption.armed = True
        elif item.to == self.node:
            for adoption in self._adoptions:
                if adoption.session == item.session:
                    adoption.cut = (item.node, item.cut)
                    adoption.released.set()

    def _received(self, item: _Publication, now: float) -> None:
        delivery = Delivery(item.user, item.message)
        own = item.node == self.node
        for adoption in self._adoptions:
            if not adoption.wants(item.user):
                continue
            if own:
                adoption.came_back(item.seq)
            elif adoption.armed:
                adoption.entries.append((item.node, item.seq, delivery))
        if own:
            return
        self.gaps.received(item.node, item.seq, now)
        try:
            self._deliver(delivery)
        except Exception:
            self._link.log.error("deliver", "delivering a message from another process failed",
                                 exc_info=True)

"""Replaying a recording: its client frames sent again to a server, and what came back.

Each session gets its own connection (an nbstream client speaking ``raw``, so frames
go out byte for byte) and plays its :class:`~nbstream.recording.script.SessionScript`
with one of three timings; a new recording attached to those clients' events keeps
what happened. Frames whose secrets were redacted on saving are not sent again: pass
credentials as for :func:`nbstream.connect` (``token=...``). An nbstream recording's
heartbeat is the connection's own: the replaying client answers the new server's
pings as they come, and the recorded pings and pongs are neither sent nor waited for.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from nbstream.client import Client, StreamClosed, aconnect
from nbstream.events import CLOSE
from nbstream.protocol import MessageType, StreamError
from nbstream.recording.frames import Frame, SessionInfo, TypeNamer
from nbstream.recording.script import SessionScript, heartbeat_types, scripts
from nbstream.redact import redact_url
from nbstream.wire import WireProtocol
from nbstream.wire import create as create_protocol

if TYPE_CHECKING:
    from nbstream.recording.recorder import Recorder
    from nbstream.server import Server

R = TypeVar("R", bound="Recorder")

Timing = Literal["original", "fast", "wait"]
TIMINGS = ("original", "fast", "wait")
SETTLE = 0.1
"""Seconds a session stays open after its last expected reply, for late extra frames."""


async def replay(recording: Recorder, target: str | Server, cls: type[R], *, timing: Timing,
                 speed: float, timeout: float, connect: dict[str, Any]) -> R:
    """Replay every session of ``recording`` against ``target``; what happened, as ``cls``.

    Raises:
        ValueError: for an unknown ``timing`` or a ``speed`` or ``timeout`` that is not
            positive; TypeError for a ``protocol`` in ``connect`` (replays send raw).
    """
    if timing not in TIMINGS:
        raise ValueError(f"timing={timing!r}: choose 'original', 'fast' or 'wait'")
    if not speed > 0 or not timeout > 0:
        raise ValueError(f"speed={speed!r} and timeout={timeout!r} must be positive numbers")
    if "protocol" in connect:
        raise TypeError("replay() sends the recorded frames as they are (protocol 'raw'); "
                        "drop protocol=")
    url = target if isinstance(target, str) else target.url
    plan = scripts(recording.frames, list(recording.info.values()), recording.protocol)
    result = cls(protocol=recording.protocol,
                 source=f"replay against {redact_url(url)}",
                 meta={"replay_of": recording.source, "timing": timing, "speed": speed})
    player = _Player(result, url, timing, speed, timeout, connect,
                     TypeNamer(recording.protocol), recording.info,
                     create_protocol("nbstream") if heartbeat_types(recording.protocol) else None)
    try:
        await asyncio.gather(*(player.play(script) for script in plan))
    finally:
        result.stop()
    return result


class _Player:
    """Plays session scripts against one URL into one result recording."""

    def __init__(self, result: Recorder, url: str, timing: Timing, speed: float,
                 timeout: float, connect: dict[str, Any], namer: TypeNamer,
                 info: dict[str, SessionInfo], heartbeat: WireProtocol | None) -> None:
        self.result, self.url, self.timing, self.speed = result, url, timing, speed
        self.timeout, self.connect, self.namer, self.info = timeout, connect, namer, info
        self.heartbeat = heartbeat
        """The protocol whose in-band pings the replaying clients answer, if any."""
        self.loop = asyncio.get_running_loop()
        self.origin = self.loop.time()
        result.start = time.time()

    async def _until(self, offset: float) -> None:
        """Sleep until ``offset`` recorded seconds after the origin (scaled by speed)."""
        delay = self.origin + offset / self.speed - self.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def play(self, script: SessionScript) -> None:
        """Open a connection, send the script's frames, wait for replies, close."""
        name, result = script.session, self.result
        if script.skipped:
            result.problems.append(f"{name}: {script.skipped} frame(s) with redacted secrets "
                                   "were not sent again (pass token=... to replay)")
        if self.timing == "original":
            await self._until(script.opened)
        recorded = self.info.get(name)
        options: dict[str, Any] = {"protocol": "raw", "reconnect": False}
        if recorded is not None and recorded.subprotocol:
            options["subprotocols"] = [recorded.subprotocol]
        if recorded is not None and recorded.user:
            options["user"] = recorded.user
        try:
            client = await aconnect(self.url, **{**options, **self.connect})
        except (StreamClosed, OSError, TimeoutError) as exc:
            result.problems.append(f"{name}: could not connect to {redact_url(self.url)}: "
                                   f"{exc}")
            return
        result.info[name] = SessionInfo(name, url=self.url, subprotocol=client.subprotocol,
                                        user=options.get("user"), opened=time.time())
        result.attach(client.events, url=self.url, session=name, namer=self.namer)
        replies = _Replies(client, self.heartbeat)
        reader = asyncio.ensure_future(replies.read())
        try:
            await self._send_all(script, client, replies)
            await replies.wait(script.replies, self.timeout)
            await asyncio.sleep(SETTLE)
        finally:
            await self._close(name, client, reader)

    async def _send_all(self, script: SessionScript, client: Client, replies: _Replies
                        ) -> None:
        for send in script.sends:
            if self.timing == "original":
                await self._until(send.offset)
            elif self.timing == "wait" and not await replies.wait(send.replies_before,
                                                                  self.timeout):
                self.result.problems.append(
                    f"{script.session}: {send.replies_before} replies expected before a "
                    f"send did not all come within {self.timeout} s; sent it anyway")
            try:
                await client.asend(send.payload)
            except StreamClosed as exc:
                self.result.problems.append(f"{script.session}: the connection closed "
                                            f"before every frame was sent again: {exc}")
                return

    async def _close(self, name: str, client: Client, reader: asyncio.Future[None]) -> None:
        by_server = client.closed
        await client.aclose()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        if by_server is not None:
            frame = Frame(time.time(), name, "s2c", CLOSE, payload=by_server.reason,
                          close_code=by_server.code)
        else:
            frame = Frame(time.time(), name, "c2s", CLOSE, close_code=1000)
        self.result.add(frame)


class _Replies:
    """Counts the frames a replaying client receives (answering in-band pings, which
    do not count); waits for a count."""

    def __init__(self, client: Client, heartbeat: WireProtocol | None) -> None:
        self.client = client
        self.heartbeat = heartbeat
        self.count = 0
        self._arrived = asyncio.Event()

    async def read(self) -> None:
        """Receive until the connection closes (the recording keeps the frames)."""
        while True:
            try:
                frame = await self.client.arecv(timeout=24 * 3600.0)
                if self.heartbeat is not None and await self._answered(frame.data):
                    continue
            except StreamClosed:
                self._arrived.set()
                return
            self.count += 1
            self._arrived.set()

    async def _answered(self, frame: object) -> bool:
        """Answer the pings in ``frame``; True if it held nothing else."""
        assert self.heartbeat is not None
        if not isinstance(frame, str):
            return False
        try:
            messages = self.heartbeat.decode_replies(frame)
        except StreamError:
            return False  # not an envelope: a reply like any other
        pings = [m for m in messages if m.type == MessageType.PING]
        for ping in pings:
            data, _ = self.heartbeat.encode(self.heartbeat.pong(ping))
            await self.client.asend(data.decode())
        return bool(pings) and len(pings) == len(messages)

    async def wait(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` frames have come (or the connection closed); False on
        timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.count < count and self.client.closed is None:
            self._arrived.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return False
        return self.count >= count

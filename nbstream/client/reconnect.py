"""Coming back after a drop: the reconnect loop, the resume, and the heartbeat that
notices a silent server (for protocols without in-band pings).

A mixin of :class:`nbstream.client.Client`; the decisions themselves (reconnect or
not, what to send again) are :class:`~nbstream.protocol.client_session.ClientSessionCore`'s.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from typing import TYPE_CHECKING

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from nbstream import wsinternals
from nbstream.client.options import ConnectOptions
from nbstream.events import PING, PONG, EventStream
from nbstream.logs import redacting
from nbstream.protocol import Backoff, CloseCode, Message, MessageType, StreamClosed
from nbstream.protocol.client_session import FINAL_ERRORS, ClientSessionCore

logger = redacting(logging.getLogger(__name__))


class Reconnecting:
    """Reconnect, resume and heartbeat for a :class:`~nbstream.client.Client`."""

    url: str
    options: ConnectOptions
    events: EventStream
    core: ClientSessionCore
    backoff: Backoff | None
    welcome: Message | None
    reconnects: int
    _loop: asyncio.AbstractEventLoop
    _ws: ClientConnection | None
    _pending: deque[Message]
    _reconnecting: asyncio.Task[None] | None
    _closed: StreamClosed | None
    _closing: bool

    if TYPE_CHECKING:
        @property
        def session_id(self) -> str | None: ...

        async def _open(self) -> None: ...

        async def _write(self, message: Message) -> bool: ...

    def _closed_error(self, exc: ConnectionClosed | None) -> StreamClosed:
        ws = self._ws
        code = ws.close_code if ws is not None else None
        reason = ws.close_reason if ws is not None else ""
        if exc is not None and exc.rcvd is not None:
            code, reason = exc.rcvd.code, exc.rcvd.reason
            self.core.closed_by_server(code, reason)
        elif exc is not None and exc.sent is not None:  # we closed; no answer came
            code, reason = exc.sent.code, exc.sent.reason
        return StreamClosed(code, reason or "", self.core.last_error)

    def _finish(self, closed: StreamClosed, *, emit: bool = True) -> StreamClosed:
        """The connection is closed for good: remember why, show it as a ``close`` row."""
        self._closed = closed
        if emit and self.events:
            self.events.emit("close", "client", self.session_id or "",
                             detail={"code": closed.code, "reason": closed.reason})
        return closed

    def _should_reconnect(self, closed: StreamClosed) -> bool:
        return not self._closing and self.core.should_reconnect(
            closed.code, can_reconnect=self.backoff is not None)

    async def _reconnect(self, closed: StreamClosed) -> None:
        """Reconnect (once for all callers) or raise the final StreamClosed."""
        reconnecting = self._start_reconnect(closed)
        try:
            await asyncio.shield(reconnecting)
        finally:
            if self._reconnecting is not None and self._reconnecting.done():
                self._reconnecting = None
        if self._closed is not None:
            raise self._closed

    def _start_reconnect(self, closed: StreamClosed) -> asyncio.Task[None]:
        """The reconnect under way, started now if there is none (requests sent from
        now on wait in the buffer)."""
        if self._reconnecting is None or self._reconnecting.done():
            self.core.reconnecting = True
            self._reconnecting = asyncio.create_task(self._reconnect_loop(closed))
        return self._reconnecting

    async def _reconnect_loop(self, closed: StreamClosed) -> None:
        assert self.backoff is not None
        core = self.core
        logger.info("%s: connection lost (%s); reconnecting", self.url, closed)
        if self.events:
            self.events.emit("close", "client", self.session_id or "",
                             detail={"code": closed.code, "reason": closed.reason})
        abnormal = closed.code != CloseCode.GOING_AWAY
        last = closed
        for attempt in range(self.backoff.attempts):
            await asyncio.sleep(self.backoff.delay(attempt))
            core.resuming()
            try:
                await self._open()
            except (StreamClosed, OSError, TimeoutError) as exc:
                last = exc if isinstance(exc, StreamClosed) else StreamClosed(None, str(exc))
                if last.code is not None:
                    core.closed_by_server(last.code, last.reason)
                if last.error is not None and last.error.code in FINAL_ERRORS:
                    break
                continue
            self.reconnects += 1
            await self._resumed(abnormal)
            return
        code, reason = core.last_close or (last.code, "")
        gave_up = f"gave up reconnecting: {last.reason or 'no answer'}"
        self._finish(StreamClosed(code, f"{reason} ({gave_up})" if reason else gave_up,
                                  last.error), emit=False)  # the drop was shown already

    async def _resumed(self, abnormal: bool) -> None:
        """After a reconnect: report the recovery, send again what has no reply yet."""
        assert self.welcome is not None
        outcome = self.core.resumed(self.welcome.data, abnormal=abnormal)
        if self.events:
            self.events.emit("open", "client", self.session_id or "",
                             detail={"resumed": True, "recovered": outcome.recovered})
        if outcome.error is not None:
            self._pending.append(Message(MessageType.ERROR, outcome.error.to_dict()))
            logger.warning("%s: %s", self.url, outcome.error)
        elif outcome.recovered:
            logger.info("%s: resumed, %s message(s) replayed", self.url,
                        self.welcome.data.get("replayed"))
        for message in outcome.resend:
            await self._write(message)

    async def _heartbeat(self, ws: ClientConnection) -> None:
        """WebSocket pings for protocols without in-band ones; a silent server: 1011."""
        interval = self.options.heartbeat_interval
        assert interval is not None
        try:
            while True:
                await asyncio.sleep(interval)
                started = self._loop.time()
                payload = os.urandom(4)
                if self.events:
                    self.events.emit("out", "client", self.session_id or "",
                                     direction="c2s", opcode=PING, size=len(payload),
                                     payload=payload)
                pong = await ws.ping(payload)
                try:
                    rtt = await asyncio.wait_for(pong, self.options.heartbeat_timeout)
                except TimeoutError:
                    logger.info("%s: no pong within %g s; closing", self.url,
                                self.options.heartbeat_timeout)
                    try:  # a server that answers no ping will hardly answer the close
                        await asyncio.wait_for(ws.close(CloseCode.INTERNAL_ERROR,
                                                        "heartbeat timeout"),
                                               self.options.heartbeat_timeout)
                    except TimeoutError:
                        wsinternals.abort(ws)
                    return
                if self.events:
                    self.events.emit("in", "client", self.session_id or "",
                                     direction="s2c", opcode=PONG, size=len(payload),
                                     payload=payload,
                                     detail={"rtt": rtt or self._loop.time() - started})
                    self.events.emit("heartbeat", "client", self.session_id or "",
                                     detail={"rtt": rtt})
        except ConnectionClosed:
            return

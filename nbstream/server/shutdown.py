"""A graceful stop: refuse newcomers, let replies in flight finish until a deadline,
cut the rest, close every connection with 1001, and report what happened."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from websockets.asyncio.server import Server as WsServer
from websockets.exceptions import ConnectionClosed

from nbstream.protocol import CloseCode
from nbstream.protocol.closing import CloseCause
from nbstream.server.accept import Acceptor
from nbstream.server.connection import Connection

logger = logging.getLogger(__name__)


@dataclass
class ShutdownReport:
    """What :meth:`Server.stop` did: streams that finished, streams it cut, timings."""

    finished: list[str] = field(default_factory=list)
    """Sessions whose in-flight stream completed within the deadline."""
    cut: list[str] = field(default_factory=list)
    """Sessions whose stream was still running at the deadline and was cancelled."""
    closed: int = 0
    """Connections closed with 1001."""
    seconds: float = 0.0
    """How long the shutdown took."""

    def __str__(self) -> str:
        if not (self.closed or self.finished or self.cut):
            return f"stopped in {self.seconds:.2f} s: no connection was left to close"
        return (f"stopped in {self.seconds:.2f} s: {_count(self.closed, 'connection')} closed, "
                f"{_count(len(self.finished), 'stream')} finished, {len(self.cut)} cut")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


async def shut_down(acceptor: Acceptor, ws_server: WsServer, timeout: float) -> ShutdownReport:
    """Stop accepting, drain for up to ``timeout`` seconds, close, end every session."""
    started = time.monotonic()
    deadline = started + timeout
    registry, protocol = acceptor.registry, acceptor.protocol
    ws_server.close(close_connections=False)
    notice = protocol.shutdown_notice(timeout)
    lives = list(registry)
    for conn in list(acceptor.connections):
        conn.core.drain()
        if notice is not None and conn.live is not None:
            conn.send_control(notice)
    for live in lives:
        live.draining = True
        live.ending(CloseCode.GOING_AWAY, "server shutdown")
    busy = [live for live in lives if not live.idle]
    if busy:
        waits = [asyncio.ensure_future(live.wait_idle()) for live in busy]
        _, pending = await asyncio.wait(waits, timeout=max(0.0, deadline - time.monotonic()))
        for wait in pending:
            wait.cancel()
    report = ShutdownReport()
    for live in busy:
        (report.finished if live.idle else report.cut).append(live.session.id)
        if not live.idle:
            await live.stop()
    conns = list(acceptor.connections)

    async def close(conn: Connection) -> None:
        try:
            await conn.close(CloseCode.GOING_AWAY, "server shutdown", CloseCause.SHUTDOWN,
                             drain=max(0.1, deadline - time.monotonic()))
        except ConnectionClosed:
            pass

    await asyncio.gather(*(close(c) for c in conns))
    report.closed = len(conns)
    try:
        await asyncio.wait_for(ws_server.wait_closed(), acceptor.options.close_timeout + 1.0)
    except TimeoutError:
        logger.warning("some connections did not close in time")
    shared = acceptor.backplane.shared
    for live in list(registry):
        # With a shared backplane the history stays, so clients resume on another process.
        await registry.end(live, forget=not shared)
    report.seconds = time.monotonic() - started
    return report

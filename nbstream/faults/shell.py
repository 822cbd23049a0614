"""The asyncio shell of the fault proxy: moves bytes between two sockets per link.

A :class:`LinkShell` owns one proxied connection: the client's socket, the socket
it opens to the target, the core :class:`~nbstream.faults.pipe.Link`, one timer per
direction (armed at the pipe's deadline) and flow control. It stops reading a
sender while that direction holds more than :data:`HIGH_WATER` bytes or while the
receiver's socket is full, so a stalled or slowed direction pushes back on the
sender as a real network would, and the proxy's memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from typing import cast

from nbstream.faults.pipe import Link
from nbstream.faults.units import Note, Signal, Way
from nbstream.faults.vocabulary import Fault

logger = logging.getLogger(__name__)

HIGH_WATER = 64 * 1024
"""Bytes one direction may hold before the proxy stops reading its sender."""
LOW_WATER = 16 * 1024
"""Bytes below which it reads again."""

OnNotes = Callable[["LinkShell", list[Note]], None]
OnClosed = Callable[["LinkShell", str], None]


class Endpoint(asyncio.Protocol):
    """One of a link's two sockets; ``way`` is the direction of what it receives."""

    def __init__(self, shell: LinkShell, way: Way) -> None:
        self.shell = shell
        self.way = way
        self.transport: asyncio.Transport | None = None
        self.write_paused = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport: asyncio's, or uvloop's (which subclasses none of asyncio's
        # transport classes but has all their methods).
        self.transport = cast(asyncio.Transport, transport)
        self.shell.made(self)

    def data_received(self, data: bytes) -> None:
        self.shell.received(self.way, data)

    def eof_received(self) -> bool:
        self.shell.ended(self.way)
        return True  # keep writing the other direction until it ends too

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.shell.lost(self.way)

    def pause_writing(self) -> None:
        self.write_paused = True
        self.shell.flow(_other(self.way))

    def resume_writing(self) -> None:
        self.write_paused = False
        self.shell.flow(_other(self.way))

    @property
    def open(self) -> bool:
        """True while bytes can still be written to this socket."""
        return self.transport is not None and not self.transport.is_closing()


def _other(way: Way) -> Way:
    return "down" if way == "up" else "up"


class LinkShell:
    """One proxied connection on an event loop (see the module docstring).

    Args:
        link: The core state of the connection.
        target: Host and port to connect to.
        on_notes: Called with what the pipes report (messages, faults).
        on_closed: Called once when the connection is gone, with how it ended.
        watched: Whether someone listens to events (then every message is reported).
    """

    def __init__(self, link: Link, loop: asyncio.AbstractEventLoop, target: tuple[str, int],
                 on_notes: OnNotes, on_closed: OnClosed, watched: Callable[[], bool]) -> None:
        self.link = link
        self.loop = loop
        self.target = target
        self.client = Endpoint(self, "up")
        self.server: Endpoint | None = None
        self.closed = False
        self._on_notes = on_notes
        self._on_closed = on_closed
        self._watched = watched
        self._timers: dict[Way, asyncio.TimerHandle | None] = {"up": None, "down": None}
        self._reading: dict[Way, bool] = {"up": True, "down": True}
        self._eof_out: dict[Way, bool] = {"up": False, "down": False}
        self._ended: dict[Way, bool] = {"up": False, "down": False}
        self._connecting: asyncio.Task[None] | None = None
        self._reset = False

    # -- sockets -------------------------------------------------------------------------

    def made(self, endpoint: Endpoint) -> None:
        """A socket is connected (the client's first, then the target's)."""
        if self.closed:  # finished (a fault, a cut, a stop) before this socket was made
            assert endpoint.transport is not None
            _close(endpoint.transport, self._reset)
            return
        if endpoint is self.client:
            self._set_reading("up", False)
            self._connecting = self.loop.create_task(self._connect())
        else:
            self.server = endpoint
            self.pump("up")  # what the client sent meanwhile, then reading resumes

    async def _connect(self) -> None:
        host, port = self.target
        try:
            await self.loop.create_connection(lambda: Endpoint(self, "down"), host, port)
        except OSError as exc:
            logger.info("proxy: cannot reach %s:%s (%s)", host, port, exc)
            self._finish(f"target unreachable: {exc}", reset=True)

    def received(self, way: Way, data: bytes) -> None:
        """Bytes from the sender of ``way``."""
        if self.closed:
            return
        watched = self._watched()
        for pipe in self.link.pipes.values():
            pipe.report_frames = watched
        self.link.received(way, data, self.loop.time())
        self.pump(way)
        if way == "down":
            self.pump("up")  # the handshake's answer may release upward bytes

    def ended(self, way: Way) -> None:
        """The sender of ``way`` finished (EOF)."""
        if self.closed or self._ended[way]:
            return
        self._ended[way] = True
        self.link.pipes[way].finish(self.loop.time())
        self.pump(way)

    def lost(self, way: Way) -> None:
        """The socket receiving ``way`` is gone."""
        self.ended(way)
        if all(e.lost for e in (self.client, self.server) if e is not None) or (
                self.server is None and self.client.lost):
            self._finish("closed")

    # -- moving data ------------------------------------------------------------------------

    def pump(self, way: Way, now: float | None = None) -> None:
        """Write what ``way`` has due, act on its signals, re-arm its timer."""
        receiver = self.server if way == "up" else self.client
        if self.closed or receiver is None:
            # Not connected to the target yet: what the client sent waits in the pipe
            # (reading is paused meanwhile, but a loop may deliver what it had read).
            return
        pipe = self.link.pipes[way]
        out = pipe.poll(self.loop.time() if now is None else now)
        for item in out:
            if isinstance(item, bytes):
                if receiver.open:
                    assert receiver.transport is not None
                    receiver.transport.write(item)
            elif item is Signal.EOF:
                self._deliver_eof(way, receiver)
            else:
                notes = pipe.notes()
                if notes:
                    self._on_notes(self, notes)
                self._finish("closed by a fault" if item is Signal.CLOSE else "reset by a fault",
                             reset=item is Signal.RESET)
                return
        notes = pipe.notes()
        if notes:
            self._on_notes(self, notes)
        if self.closed:
            return
        self.flow(way)
        self._arm(way, pipe.deadline())

    def _deliver_eof(self, way: Way, receiver: Endpoint | None) -> None:
        self._eof_out[way] = True
        if receiver is not None and receiver.open:
            assert receiver.transport is not None
            if receiver.transport.can_write_eof():
                receiver.transport.write_eof()
        if all(self._eof_out.values()):
            self._finish("closed")

    def _arm(self, way: Way, deadline: float | None) -> None:
        timer = self._timers[way]
        if deadline is None:
            if timer is not None:
                timer.cancel()
                self._timers[way] = None
            return
        if timer is not None:
            if timer.when() <= deadline:
                return  # it fires first and re-arms
            timer.cancel()
        self._timers[way] = self.loop.call_at(deadline, self._fire, way, deadline)

    def _fire(self, way: Way, deadline: float) -> None:
        self._timers[way] = None
        self.pump(way, max(self.loop.time(), deadline))

    def flow(self, way: Way) -> None:
        """Read the sender of ``way`` only while the receiver keeps up (see module doc)."""
        if self.closed:
            return
        receiver = self.server if way == "up" else self.client
        if receiver is None:
            self._set_reading(way, False)
            return
        held = self.link.pipes[way].held_bytes
        limit = HIGH_WATER if self._reading[way] else LOW_WATER
        self._set_reading(way, not receiver.write_paused and held <= limit)

    def _set_reading(self, way: Way, reading: bool) -> None:
        if reading == self._reading[way]:
            return
        sender = self.client if way == "up" else self.server
        if sender is None or sender.transport is None or sender.transport.is_closing():
            return
        self._reading[way] = reading
        if reading:
            sender.transport.resume_reading()
        else:
            sender.transport.pause_reading()

    # -- faults and control ------------------------------------------------------------------

    def install(self, fault: Fault) -> None:
        """Start ``fault`` on this connection."""
        self.link.install(fault, self.loop.time())
        self.pump("up")
        self.pump("down")

    def update(self, fault: Fault) -> None:
        """Give a running fault new parameters."""
        self.link.update(fault)

    def uninstall(self, fault_id: str) -> None:
        """Stop a fault on this connection; what it held goes on."""
        self.link.uninstall(fault_id, self.loop.time())
        self.pump("up")
        self.pump("down")

    def freeze(self, frozen: bool) -> None:
        """Hold both directions (``True``) or let them go on."""
        for pipe in self.link.pipes.values():
            pipe.frozen = frozen
        if not frozen:
            self.pump("up")
            self.pump("down")

    def cut(self) -> None:
        """Drop the connection now, both ways, as a failed network would (TCP RST)."""
        self._finish("cut", reset=True)

    def close(self) -> None:
        """Close both sockets (what was written is still delivered)."""
        self._finish("proxy stopped")

    def _finish(self, how: str, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self._reset = reset
        for timer in self._timers.values():
            if timer is not None:
                timer.cancel()
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        for endpoint in (self.client, self.server):
            if endpoint is not None and endpoint.transport is not None:
                _close(endpoint.transport, reset)
        self._on_closed(self, how)


def _close(transport: asyncio.Transport, reset: bool) -> None:
    if reset:
        _reset(transport)
    else:
        transport.close()


def _reset(transport: asyncio.Transport) -> None:
    """Abort with a TCP RST (SO_LINGER 0), not a FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()

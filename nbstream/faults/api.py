"""FaultProxy: a WebSocket-aware fault proxy in the kernel. Start one with :func:`proxy`.

``proxy = nbstream.proxy(server)`` listens on 127.0.0.1 and forwards every
connection to the server; connect through ``proxy.url``. Faults are added, changed
and removed while clients talk: ``proxy.add("latency", ms=50)``,
``proxy.add("drop", match="end")``, ``proxy.cut()``. See docs/faults.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import random
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from nbstream import running, runtime
from nbstream.faults.eventlog import ProxyEvents
from nbstream.faults.frames import decode_unit, payload_of
from nbstream.faults.pipe import Link
from nbstream.faults.shell import LinkShell
from nbstream.faults.units import Note
from nbstream.faults.vocabulary import Direction, Fault, make_fault

if TYPE_CHECKING:
    from nbstream.server import Server

T = TypeVar("T")

_WAYS = {"up": "c2s", "down": "s2c"}


class FaultHandle:
    """One fault added to a proxy: change it with :meth:`update`, end it with :meth:`remove`."""

    def __init__(self, proxy: FaultProxy, fault: Fault) -> None:
        self._proxy = proxy
        self._fault = fault

    @property
    def id(self) -> str:
        """The fault's name on its proxy, e.g. ``latency-1``."""
        return self._fault.id

    @property
    def fault(self) -> str:
        """What it does (``"latency"``, ``"drop"``...)."""
        return self._fault.kind.name

    @property
    def direction(self) -> Direction:
        """``up``, ``down`` or ``both``."""
        return self._fault.direction

    @property
    def params(self) -> dict[str, Any]:
        """Its parameters, defaults included, and its ``probability``."""
        return {**self._fault.params, "probability": self._fault.probability}

    @property
    def active(self) -> bool:
        """True until removed (or until the proxy is cleared or stopped)."""
        return self.id in self._proxy._faults

    def update(self, **params: Any) -> None:
        """Change parameters while it runs (e.g. a latency slider): ``h.update(ms=80)``.

        Raises:
            ValueError: for a parameter this fault does not have, or a wrong value.
        """
        self._fault = self._proxy._update(self.id, params)

    def remove(self) -> None:
        """Stop the fault on every connection; what it held goes on. Safe twice."""
        self._proxy._remove(self.id)

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"<fault {self.id}: {self._fault} ({state})>"


class FaultProxy:
    """A running fault proxy. Create it with :func:`nbstream.proxy`.

    Connect clients to :attr:`url`. Add faults with :meth:`add`, list them with
    :attr:`faults`, end them with :meth:`clear`; :meth:`cut` drops every connection
    now, :meth:`pause` / :meth:`resume` freeze both directions. Everything the proxy
    forwards and every fault it applies is an event on :attr:`events` (FlowView
    shows them). Stop it with :meth:`stop`.
    """

    def __init__(self, target: str, *, host: str = "127.0.0.1", port: int = 0,
                 seed: int | None = None, loop: asyncio.AbstractEventLoop | None = None) -> None:
        parts = urlsplit(target)
        if parts.scheme != "ws":
            raise ValueError(f"the proxy forwards ws:// URLs, got {target!r} (it must read "
                             "frames, so it cannot sit in front of wss://)")
        if parts.hostname is None:
            raise ValueError(f"no host in {target!r}")
        self.target = target
        """The URL connections are forwarded to."""
        self.seed = seed
        self.events = ProxyEvents()
        """Faults applied (kind ``fault``), connections opened and closed, and while
        someone subscribes every message forwarded (``out``), all with source
        ``proxy``; ``proxy.events.to_frame()`` lists the recent faults and connections."""
        self._target = (parts.hostname, parts.port or 80)
        self._path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        self._loop = loop or runtime.home_loop()
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._numbers = itertools.count(1)
        self._faults: dict[str, Fault] = {}
        self._links: dict[int, LinkShell] = {}
        self._unannounced: set[int] = set()
        """Connections whose ``open`` event waits for their first frame (and its session)."""
        self._paused = False
        self._stopped = False
        self._server: asyncio.Server | None = None
        self._socket = socket.create_server((host, port))
        self._socket.setblocking(False)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        """The port it listens on (bound already, so :attr:`url` is known at once)."""
        running.track(self, "proxy", FaultProxy._stop_for_all)

    async def astart(self) -> FaultProxy:
        """Start accepting connections; :func:`proxy` and :func:`aproxy` do this for you.

        The port is bound when the object is made, so its :attr:`url` is known before
        it serves; connections made before then wait in the listen queue.
        """
        if self._server is None:
            self._server = await runtime.run_on(
                self._loop, self._loop.create_server(self._accept, sock=self._socket))
        return self

    # -- what it is ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The ws:// URL to connect through: the target's path and query on the proxy."""
        return f"ws://{self.host}:{self.port}{self._path}"

    @property
    def faults(self) -> list[FaultHandle]:
        """The faults in force, in the order they were added."""
        return [FaultHandle(self, fault) for fault in self._faults.values()]

    @property
    def connections(self) -> int:
        """Connections open through the proxy now."""
        return len(self._links)

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused

    @property
    def running(self) -> bool:
        """True until :meth:`stop`."""
        return not self._stopped

    # -- faults ---------------------------------------------------------------------------

    def add(self, fault: str, *, direction: Direction = "down", probability: float = 1.0,
            **params: Any) -> FaultHandle:
        """Start a fault on every connection, open now or later; returns its handle.

        Args:
            fault: A TCP-level fault (``latency``, ``bandwidth``, ``slicer``,
                ``timeout``, ``reset_peer``, ``limit_data``, ``slow_close``) or a
                WebSocket-level one (``drop``, ``duplicate``, ``delay``, ``reorder``,
                ``corrupt``, ``stall``); docs/faults.md lists their parameters.
            direction: ``"down"`` (server to client, the default, as Toxiproxy's
                downstream), ``"up"`` (client to server) or ``"both"``.
            probability: TCP-level faults: the chance each connection gets it;
                WebSocket-level faults: the chance each chosen message does.
            **params: The fault's own parameters, e.g. ``ms=50, jitter_ms=10``;
                message faults choose with ``index=``, ``match=`` and ``times=``.

        Raises:
            ValueError: naming an unknown fault or parameter, or a wrong value.
            RuntimeError: if the proxy was stopped.
        """
        if self._stopped:
            raise RuntimeError("this proxy was stopped; start another with nbstream.proxy()")
        checked = make_fault(f"{fault}-{next(self._ids)}", fault, direction, probability,
                             params)

        def apply() -> None:
            self._faults[checked.id] = checked
            for shell in list(self._links.values()):
                shell.install(checked)

        self._call(apply)
        return FaultHandle(self, checked)

    def _update(self, fault_id: str, params: dict[str, Any]) -> Fault:
        current = self._faults.get(fault_id)
        if current is None:
            raise ValueError(f"fault {fault_id} was removed; add a new one")
        changed = current.with_params(**params)

        def apply() -> None:
            self._faults[fault_id] = changed
            for shell in list(self._links.values()):
                shell.update(changed)

        self._call(apply)
        return changed

    def _remove(self, fault_id: str) -> None:
        def apply() -> None:
            if self._faults.pop(fault_id, None) is not None:
                for shell in list(self._links.values()):
                    shell.uninstall(fault_id)

        self._call(apply)

    def clear(self) -> int:
        """Remove every fault; returns how many there were."""
        ids = list(self._faults)
        for fault_id in ids:
            self._remove(fault_id)
        return len(ids)

    def cut(self) -> int:
        """Drop every connection now (TCP reset both ways); returns how many.

        Clients see an abnormal close (1006); an nbstream client reconnects through
        the proxy and resumes its session.
        """
        def apply() -> int:
            shells = list(self._links.values())
            for shell in shells:
                shell.cut()
            return len(shells)

        return self._call(apply)

    def pause(self) -> None:
        """Freeze both directions of every connection (nothing is lost) until :meth:`resume`."""
        self._freeze(True)

    def resume(self) -> None:
        """Let everything held by :meth:`pause` go on."""
        self._freeze(False)

    def _freeze(self, frozen: bool) -> None:
        def apply() -> None:
            self._paused = frozen
            for shell in list(self._links.values()):
                shell.freeze(frozen)

        self._call(apply)

    # -- connections --------------------------------------------------------------------------

    def _accept(self) -> Any:
        number = next(self._numbers)
        link = Link(number, random.Random(self._rng.getrandbits(64)))
        shell = LinkShell(link, self._loop, self._target, self._publish, self._closed,
                          lambda: bool(self.events))
        self._links[number] = shell
        now = self._loop.time()
        for fault in self._faults.values():
            link.install(fault, now)
        if self._paused:
            shell.freeze(True)
        self._unannounced.add(number)
        return shell.client

    def _announce(self, link: Link) -> None:
        """Emit ``open`` once, when the first frame passes (or the connection ends): by
        then the server's welcome has named the session, as every later event does."""
        if link.number in self._unannounced:
            self._unannounced.discard(link.number)
            self.events.emit("open", "proxy", link.session_id,
                             detail={"connection": link.number, "target": self.target})

    def _publish(self, shell: LinkShell, notes: list[Note]) -> None:
        events, link = self.events, shell.link
        self._announce(link)
        for note in notes:
            direction = _WAYS[note.way]
            if note.kind == "fault":
                events.emit("fault", "proxy", link.session_id, direction=direction,
                            detail={**(note.detail or {}), "direction": note.way,
                                    "connection": link.number})
                continue
            if not events:
                continue
            unit = note.unit
            assert unit is not None
            decoded = decode_unit(unit)
            events.emit("out", "proxy", link.session_id, direction=direction,
                        message=decoded if not isinstance(decoded, str | bytes) else None,
                        size=len(note.payload), opcode=note.opcode, payload=payload_of(unit))

    def _closed(self, shell: LinkShell, how: str) -> None:
        self._links.pop(shell.link.number, None)
        self._announce(shell.link)
        self.events.emit("close", "proxy", shell.link.session_id,
                         detail={"connection": shell.link.number, "how": how})

    # -- running on the proxy's loop -------------------------------------------------------------

    def _call(self, action: Callable[[], T]) -> T:
        """Run ``action`` on the proxy's loop (at once when already there) and return."""
        if runtime.running_loop() is self._loop or not self._loop.is_running():
            return action()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(action())
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result()

    # -- stopping ---------------------------------------------------------------------------------

    async def astop(self) -> str:
        """Stop; see :meth:`stop`."""
        return await runtime.run_on(self._loop, self._stop())

    def stop(self) -> str:
        """Stop listening and close every connection through the proxy. Safe twice.

        Returns:
            What it did, e.g. ``"stopped: 2 connection(s) closed"``.
        """
        if self._stopped:
            return "already stopped"
        return runtime.run_sync(self._stop(), self._loop)

    async def _stop(self) -> str:
        if self._stopped:
            return "already stopped"
        self._stopped = True
        started = time.monotonic()
        shells = list(self._links.values())
        for shell in shells:
            shell.close()
        self._faults.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        else:
            self._socket.close()
        return (f"stopped in {time.monotonic() - started:.2f} s: {len(shells)} "
                "connection(s) closed")

    def _stop_for_all(self) -> str | None:
        if self._stopped or self._loop.is_closed():
            return None
        return f"proxy {self.url} -> {self.target}: {self.stop()}"

    # -- context managers and display ---------------------------------------------------------

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FaultProxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    def __repr__(self) -> str:
        state = "paused" if self._paused else "running" if self.running else "stopped"
        faults = ", ".join(f"{f.kind.name} {f.direction}" for f in self._faults.values())
        return (f"<nbstream.FaultProxy {self.url} -> {self.target} {state}, "
                f"{self.connections} connection(s), faults: {faults or 'none'}>")


def _target_url(target: str | Server) -> str:
    return target if isinstance(target, str) else target.url


async def aproxy(target: str | Server, *, seed: int | None = None, port: int = 0) -> FaultProxy:
    """Start a fault proxy from async code; see :func:`proxy`."""
    return await FaultProxy(_target_url(target), port=port, seed=seed).astart()


def proxy(target: str | Server, *, seed: int | None = None, port: int = 0) -> FaultProxy:
    """Start a fault proxy in front of ``target`` and return it, already listening.

    Like :func:`nbstream.serve` it returns at once and keeps running between cells
    (on the kernel's loop in a notebook, on nbstream's thread in a script).

    Args:
        target: The server's ``ws://`` URL, or a running :class:`nbstream.Server`.
        seed: Makes every random choice (jitter, slicing, probabilities) repeat
            from run to run for the same connections and faults.
        port: Port to listen on, on 127.0.0.1; 0 picks a free one.

    Returns:
        The running :class:`FaultProxy`: connect through ``proxy.url``, then
        ``proxy.add("latency", ms=50)``, ``proxy.cut()``, ``proxy.stop()``.
    """
    faults = FaultProxy(_target_url(target), port=port, seed=seed)
    return runtime.run_sync(faults.astart(), faults._loop)

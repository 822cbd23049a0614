"""The nbstream server: a websockets server plus sessions, limits, heartbeat, shutdown.

Start one with :func:`nbstream.serve` (returns at once, already listening, from a
notebook cell or a script) or ``await nbstream.aserve()``. Stop it with
:meth:`Server.stop`, which drains in-flight streams before closing.

:class:`Server` is the facade; the work is done by ``accept`` (letting connections
in), ``connection`` (one WebSocket), ``live`` (one session), ``registry`` (all
sessions and their bounds) and ``shutdown``; docs/architecture.md draws them.
"""

from __future__ import annotations

import asyncio
import html
import logging
import socket
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.http11 import Response

from nbstream import running, runtime, wire, wsinternals
from nbstream.backplane import Delivery
from nbstream.backplane import create as create_backplane
from nbstream.events import EventStream
from nbstream.handlers import ConversationHandler, Handler, resolve_handler
from nbstream.logs import websockets_logger
from nbstream.protocol import CloseCode, Message
from nbstream.protocol.closing import CloseCause
from nbstream.server.accept import Acceptor, Route
from nbstream.server.connections import Connections
from nbstream.server.http import respond, respond_json
from nbstream.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from nbstream.server.metrics import ServerMetrics
from nbstream.server.options import ServerOptions
from nbstream.server.registry import SessionRegistry
from nbstream.server.shutdown import ShutdownReport, shut_down

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Server:
    """A running nbstream server. Create it with :func:`nbstream.serve`.

    Use :attr:`url` to connect, :attr:`connections` to look at who is there,
    :meth:`broadcast` / :meth:`send_to_user` to push, :meth:`stop` to finish.
    """

    def __init__(self, handler: str | Handler | ConversationHandler, host: str, port: int,
                 path: str, options: ServerOptions, loop: asyncio.AbstractEventLoop) -> None:
        self.protocol = wire.create(options.protocol, type_key=options.type_key)
        self.handler = resolve_handler(
            handler, envelope=isinstance(self.protocol, wire.EnvelopeProtocol))
        self.host = host
        self.path = "/" + path.strip("/")
        self.options = options
        if self.handler.conversation is not None and options.protocol == "nbstream":
            # A conversation reads every message a client sends, binary frames too.
            self.protocol = wire.EnvelopeProtocol(requests=None, binary=True)
        """How frames become messages (``protocol=``; see nbstream.wire)."""
        self.events = EventStream()
        """Every connection and message, for views and statistics (see nbstream.events)."""
        self.backplane = create_backplane(options.backplane, limits=options.backplane_limits)
        """Where fan-out, per-user counts and session history are shared (see docs)."""
        self.metrics = (ServerMetrics(self._gauges, self.backplane.stats) if options.metrics
                        else None)
        """Prometheus metrics served at ``GET /metrics`` (``metrics=True``)."""
        if self.metrics is not None:
            self.events.subscribe(self.metrics.observe)
        self._requested_port = port
        self._loop = loop
        self._registry = SessionRegistry(
            options, self.handler, self.protocol, self.events, self.backplane,
            on_evict=self.metrics.observe_eviction if self.metrics else None)
        routes: dict[str, Route] = {"/health": self._health_route,
                                    "/ready": self._ready_route}
        if self.metrics is not None:
            routes["/metrics"] = self._metrics_route
        self._acceptor = Acceptor(path=self.path, options=options, protocol=self.protocol,
                                  registry=self._registry, backplane=self.backplane,
                                  events=self.events, metrics=self.metrics, routes=routes,
                                  stopping=lambda: self._stopping)
        self._ws_server: WsServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        self._stopping = False
        self._stop_task: asyncio.Task[ShutdownReport] | None = None
        self.port = 0
        running.track(self, "server", Server._stop_for_all)

    # -- start ----------------------------------------------------------------------

    async def _start(self) -> None:
        opts, protocol = self.options, self.protocol
        await self.backplane.start(self._deliver_from_elsewhere,
                                   history_max_messages=opts.history_max_messages,
                                   release=self._registry.release)
        origins = None if opts.allowed_origins is None else [*opts.allowed_origins, None]
        try:
            self._ws_server = await ws_serve(
                self._acceptor.handle,
                self.host,
                self._requested_port,
                process_request=self._acceptor.process_request,
                select_subprotocol=self._select_subprotocol if protocol.subprotocol else None,
                subprotocols=[protocol.subprotocol] if protocol.subprotocol else None,  # type: ignore[list-item]
                origins=origins,  # type: ignore[arg-type]
                ssl=opts.ssl,
                compression="deflate" if opts.compression else None,
                max_size=opts.max_message_bytes,
                open_timeout=opts.open_timeout,
                close_timeout=opts.close_timeout,
                # Without in-band heartbeats, the heartbeat is WebSocket pings already:
                # websockets' keepalive would ping a second time.
                ping_interval=opts.ping_interval if protocol.in_band_heartbeat else None,
                ping_timeout=opts.ping_timeout,
                logger=websockets_logger("nbstream.websockets.server"),
            )
        except socket.gaierror as exc:
            await self.backplane.close()
            raise OSError(f"cannot listen on host {self.host!r}: the name does not resolve "
                          f"({exc.strerror})") from None
        except OSError as exc:
            await self.backplane.close()
            raise OSError(f"cannot listen on {self.host}:{self._requested_port}: "
                          f"{exc.strerror or exc}") from None
        self.port = self._ws_server.sockets[0].getsockname()[1]
        self._started = time.monotonic()
        self._ticker = asyncio.create_task(self._tick(), name="nbstream-heartbeat")
        logger.info("nbstream server listening on %s", self.url)

    def _select_subprotocol(self, ws: ServerConnection, offered: Any) -> Any:
        """Speak the protocol's subprotocol with clients that offer it, plain WebSocket else."""
        wanted = self.protocol.subprotocol
        return wanted if wanted in offered else None

    @property
    def url(self) -> str:
        """The WebSocket URL clients connect to, e.g. ``ws://127.0.0.1:PORT/ws``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "wss" if self.options.ssl is not None else "ws"
        return f"{scheme}://{host}:{self.port}{self.path}"

    @property
    def health_url(self) -> str:
        """The HTTP URL of the health check (``GET /health``)."""
        base = self.url.replace("ws", "http", 1)
        return base[: len(base) - len(self.path)] + "/health"

    @property
    def connections(self) -> Connections:
        """Live view of open connections: session, user, since, messages in/out."""
        return Connections(self._registry)

    @property
    def running(self) -> bool:
        """True until :meth:`stop` begins."""
        return self._ws_server is not None and not self._stopping

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` answers: status, connections, sessions, users, uptime."""
        admission = self._acceptor.admission
        return {
            "status": ("stopped" if self._stop_task is not None and self._stop_task.done()
                       else "stopping" if self._stopping else "ok"),
            "connections": admission.total,
            "sessions": len(self._registry),
            "detached_sessions": self._registry.waiting,
            "detached_bytes": self._registry.detached_bytes,
            "evicted_sessions": self._registry.evicted,
            "users": admission.users,
            "uptime": round(time.monotonic() - self._started, 3),
            **self.backplane.health(),
        }

    def readiness(self) -> list[str]:
        """What ``GET /ready`` reports: why this server should get no new clients now.

        Empty when ready. Liveness (``GET /health``) stays 200 meanwhile: the process
        works, it cannot do its whole job (its backplane is away, or dropping).
        """
        problems = ["stopping"] if self._stopping else []
        return problems + self.backplane.readiness()

    def _gauges(self) -> dict[str, float]:
        return {
            "connections": self._acceptor.admission.total,
            "sessions": len(self._registry),
            "queued_bytes": sum(conn.outbox.queued_bytes
                                for conn in list(self._acceptor.connections)),
        }

    def _health_route(self, ws: ServerConnection) -> Response:
        return respond_json(ws, 200, self.health())

    def _ready_route(self, ws: ServerConnection) -> Response:
        problems = self.readiness()
        return respond_json(ws, 503 if problems else 200,
                            {"ready": not problems, "problems": problems})

    def _metrics_route(self, ws: ServerConnection) -> Response:
        assert self.metrics is not None
        return respond(ws, 200, self.metrics.render().decode(), METRICS_CONTENT_TYPE)

    # -- the tick: heartbeats, slow consumers, authentication, expired sessions -----------

    async def _tick(self) -> None:
        opts = self.options
        tick = min(1.0, max(0.01, min(opts.heartbeat_interval, opts.heartbeat_timeout,
                                      opts.auth_timeout, opts.send_timeout) / 4))
        acceptor, registry = self._acceptor, self._registry
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for conn in list(acceptor.connections):
                conn.tick(now)
            registry.expire(now)
            acceptor.user_buckets.prune({c.user for c in acceptor.connections if c.user})

    # -- pushing messages -------------------------------------------------------------------

    def _push(self, user: str | None, message: Message) -> int:
        return sum(live.push(message) for live in self._registry
                   if user is None or live.session.user == user)

    def _deliver_from_elsewhere(self, delivery: Delivery) -> None:
        """Fan-out published by another server process: push it to local sessions."""
        self._push(delivery.user, delivery.message)

    async def abroadcast(self, message: Message | dict[str, Any] | str) -> int:
        """Send ``message`` to every session at once; returns how many connections got it.

        Never waits for a client: each connection has its own bounded queue, and a
        client too slow to drain it is dropped (close 4002). Sessions whose client
        is away keep the message in their history for when it resumes.
        """
        return await self._on_loop(self._apush(None, self.protocol.to_message(message)))

    async def asend_to_user(self, user: str, message: Message | dict[str, Any] | str) -> int:
        """Send ``message`` to every session of ``user``; returns how many connections got it."""
        return await self._on_loop(self._apush(user, self.protocol.to_message(message)))

    async def _apush(self, user: str | None, message: Message) -> int:
        delivered = self._push(user, message)
        await self.backplane.publish(Delivery(user, message))
        return delivered

    def broadcast(self, message: Message | dict[str, Any] | str) -> int:
        """Sync twin of :meth:`abroadcast`."""
        return runtime.run_sync(self.abroadcast(message), self._loop)

    def send_to_user(self, user: str, message: Message | dict[str, Any] | str) -> int:
        """Sync twin of :meth:`asend_to_user`."""
        return runtime.run_sync(self.asend_to_user(user, message), self._loop)

    async def adisconnect(self, session_id: str, reason: str = "disconnected by server", *,
                          abrupt: bool = False) -> bool:
        """Close one session's connection; False if it is not connected.

        Normally closes with 1000, which ends the session. ``abrupt=True`` drops the
        TCP connection without a close frame instead, as a network failure would:
        the session stays, and an nbstream client reconnects and resumes it.
        """
        return await self._on_loop(self._disconnect(session_id, reason, abrupt))

    async def _disconnect(self, session_id: str, reason: str, abrupt: bool) -> bool:
        live = self._registry.get(session_id)
        conn = live.connection if live is not None else None
        if conn is None:
            return False
        if abrupt:
            wsinternals.abort(conn.ws)
        else:
            await conn.close(CloseCode.NORMAL_CLOSURE, reason, CloseCause.DISCONNECTED)
        return True

    def disconnect(self, session_id: str, reason: str = "disconnected by server", *,
                   abrupt: bool = False) -> bool:
        """Sync twin of :meth:`adisconnect`."""
        return runtime.run_sync(self.adisconnect(session_id, reason, abrupt=abrupt), self._loop)

    # -- stopping --------------------------------------------------------------------------

    async def astop(self, timeout: float = 5.0) -> ShutdownReport:
        """Stop gracefully; see :meth:`stop`."""
        return await self._on_loop(self._stop_once(timeout))

    def stop(self, timeout: float = 5.0) -> ShutdownReport:
        """Stop gracefully and return a :class:`ShutdownReport`. Safe to call twice.

        Refuses new connections, sends ``server_shutdown`` to every connection, lets
        in-flight streams finish for up to ``timeout`` seconds, cancels the rest,
        then closes every connection with 1001 (going away).
        """
        if self._stop_task is not None and self._stop_task.done():
            return self._stop_task.result()
        return runtime.run_sync(self.astop(timeout), self._loop)

    def _stop_for_all(self) -> str | None:
        if self._stop_task is not None and self._stop_task.done():
            return None
        return f"server {self.url}: {self.stop(timeout=1.0)}"

    async def _stop_once(self, timeout: float) -> ShutdownReport:
        if self._stop_task is None:
            self._stop_task = asyncio.create_task(self._shutdown(timeout))
        return await asyncio.shield(self._stop_task)

    async def _shutdown(self, timeout: float) -> ShutdownReport:
        self._stopping = True
        assert self._ws_server is not None
        report = await shut_down(self._acceptor, self._ws_server, timeout)
        await self.backplane.close()
        if self._ticker is not None:
            self._ticker.cancel()
        logger.info("nbstream server on port %s %s", self.port, report)
        return report

    async def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the server's loop, from whichever loop the caller is on."""
        return await runtime.run_on(self._loop, coro)

    # -- context managers and display -------------------------------------------------------

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        total = self._acceptor.admission.total
        return f"<nbstream.Server {self.url} {state}, {total} connection(s)>"

    def _repr_html_(self) -> str:
        state = "running" if self.running else "stopped"
        health = self.health()
        table = self.connections._repr_html_() if health["connections"] else ""
        return (
            f"<div><b>nbstream server</b> <code>{html.escape(self.url)}</code> — {state}, "
            f"{health['connections']} connection(s), up {health['uptime']:.0f} s{table}</div>"
        )



def _check_address(host: object, port: object, path: object) -> None:
    """Refuse a bad address before anything binds (names the argument and the value)."""
    if not isinstance(host, str) or not host:
        raise TypeError(f"serve(host={host!r}): must be a host name or address")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"serve(port={port!r}): must be an integer from 0 to 65535")
    if not 0 <= port <= 65535:
        raise ValueError(f"serve(port={port!r}): must be an integer from 0 to 65535")
    if not isinstance(path, str):
        raise TypeError(f"serve(path={path!r}): must be a str such as '/ws'")


async def aserve(handler: str | Handler | ConversationHandler = "agent", *,
                 host: str = "127.0.0.1", port: int = 0, path: str = "/ws",
                 thread: bool = False, **options: Any) -> Server:
    """Start a server on the running loop (or on nbstream's thread with ``thread=True``).

    Returns once it is listening; see :func:`serve` for the arguments.
    """
    _check_address(host, port, path)
    opts = ServerOptions.from_kwargs(options)
    loop = runtime.home_loop(thread)
    server = Server(handler, host, port, path, opts, loop)
    await runtime.run_on(loop, server._start())
    return server


def serve(handler: str | Handler | ConversationHandler = "agent", *, host: str = "127.0.0.1",
          port: int = 0, path: str = "/ws", thread: bool = False, **options: Any) -> Server:
    """Start an nbstream server and return it, already listening.

    In a notebook cell it lives on the kernel's event loop and keeps serving between
    cells (a cell that blocks, e.g. ``time.sleep``, pauses it; pass ``thread=True``
    to run it on a background thread instead, at about a third of the throughput).
    In a script it runs on a background thread.

    Args:
        handler: ``"agent"`` (scripted, streams tokens and uses a calculator tool),
            ``"echo"``, your own reply handler ``async def handler(message, session):
            yield ...``, or a conversation handler ``async def handler(conversation)``.
        host: Interface to listen on; keep 127.0.0.1 unless you mean to expose it.
        port: TCP port; 0 picks a free one (read it back from ``server.port``).
        path: WebSocket endpoint; ``path/<session_id>`` is accepted too.
        thread: Run on nbstream's background thread even inside a kernel.
        **options: See :class:`nbstream.ServerOptions` (protocol, heartbeat, limits...).

    Returns:
        The running :class:`Server`; connect with ``nbstream.connect(server.url)``
        and finish with ``server.stop()``.

    Raises:
        TypeError, ValueError: naming an option that is unknown or out of range.
        OSError: when the address cannot be listened on (saying which).
    """
    _check_address(host, port, path)
    opts = ServerOptions.from_kwargs(options)
    loop = runtime.home_loop(thread)
    server = Server(handler, host, port, path, opts, loop)
    runtime.run_sync(server._start(), loop)
    return server

"""The nbstream server: a websockets server plus sessions, limits, heartbeat, shutdown.

Start one with :func:`nbstream.serve` (returns at once, already listening, from a
notebook cell or a script) or ``await nbstream.aserve()``. Stop it with
:meth:`Server.stop`, which drains in-flight streams before closing.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import time
import uuid
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from nbstream import runtime
from nbstream.events import EventStream
from nbstream.handlers import Handler, as_message, resolve_handler
from nbstream.protocol import (
    SUBPROTOCOL,
    Admission,
    BoundedHistory,
    CloseCode,
    ErrorCode,
    HeartbeatAction,
    Message,
    MessageType,
    Session,
    StreamError,
)
from nbstream.server.connection import Connection
from nbstream.server.options import ServerOptions

logger = logging.getLogger(__name__)

T = TypeVar("T")

SESSION_TAKEN_OVER = 4001
"""Close code for a connection replaced by a newer one with the same session id."""


@dataclass(frozen=True)
class ConnectionInfo:
    """A snapshot of one open connection, as listed by :attr:`Server.connections`."""

    session_id: str
    user: str | None
    connected_since: datetime
    messages_in: int
    messages_out: int
    bytes_in: int
    bytes_out: int
    heartbeat_rtt: float | None
    streaming: bool
    history_messages: int
    history_bytes: int


class Connections(Mapping[str, ConnectionInfo]):
    """A live, read-only view of a server's open connections, keyed by session id.

    Each lookup reads the current counters. ``to_frame()`` gives a DataFrame.
    """

    def __init__(self, registry: dict[str, Connection]) -> None:
        self._registry = registry

    def __getitem__(self, session_id: str) -> ConnectionInfo:
        conn = self._registry[session_id]
        s = conn.session
        return ConnectionInfo(s.id, s.user, s.connected_at, s.messages_in, s.messages_out,
                              s.bytes_in, s.bytes_out, conn.heartbeat.rtt,
                              conn.streaming is not None, len(s.history),
                              s.history.total_bytes)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._registry))

    def __len__(self) -> int:
        return len(self._registry)

    def to_frame(self) -> Any:
        """The connections as a pandas DataFrame, one row per connection."""
        import pandas as pd

        columns = list(ConnectionInfo.__dataclass_fields__)
        return pd.DataFrame([vars(self[k]) for k in self if k in self._registry],
                            columns=columns)

    def __repr__(self) -> str:
        return f"<{len(self)} connection(s): {', '.join(list(self)[:5])}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in vars(info).values())
            + "</tr>"
            for info in (self[k] for k in self if k in self._registry)
        )
        head = "".join(f"<th>{name}</th>" for name in ConnectionInfo.__dataclass_fields__)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


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
        return (f"stopped in {self.seconds:.2f} s: {self.closed} connection(s) closed, "
                f"{len(self.finished)} stream(s) finished, {len(self.cut)} cut")


class Server:
    """A running nbstream server. Create it with :func:`nbstream.serve`.

    Use :attr:`url` to connect, :attr:`connections` to look at who is there,
    :meth:`broadcast` / :meth:`send_to_user` to push, :meth:`stop` to finish.
    """

    def __init__(self, handler: Handler, host: str, port: int, path: str,
                 options: ServerOptions, loop: asyncio.AbstractEventLoop) -> None:
        self.handler = handler
        self.host = host
        self.path = "/" + path.strip("/")
        self.options = options
        self.events = EventStream()
        """Every connection and message, for views and statistics (see nbstream.events)."""
        self._requested_port = port
        self._loop = loop
        self._registry: dict[str, Connection] = {}
        self._admission = Admission(options.max_connections, options.max_connections_per_user)
        self._ws_server: WsServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = time.monotonic()
        self._stopping = False
        self._stop_task: asyncio.Task[ShutdownReport] | None = None
        self.port = 0

    # -- start ----------------------------------------------------------------------

    async def _start(self) -> None:
        opts = self.options
        self._ws_server = await ws_serve(
            self._handle,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            compression="deflate" if opts.compression else None,
            max_size=opts.max_message_bytes,
            open_timeout=opts.open_timeout,
            close_timeout=opts.close_timeout,
            ping_interval=opts.ping_interval,
            ping_timeout=opts.ping_timeout,
        )
        self.port = self._ws_server.sockets[0].getsockname()[1]
        self._started = time.monotonic()
        self._ticker = asyncio.create_task(self._heartbeat_loop(), name="nbstream-heartbeat")
        logger.info("nbstream server listening on %s", self.url)

    @property
    def url(self) -> str:
        """The WebSocket URL clients connect to, e.g. ``ws://127.0.0.1:PORT/ws``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}{self.path}"

    @property
    def health_url(self) -> str:
        """The HTTP URL of the health check (``GET /health``)."""
        return self.url.replace("ws://", "http://", 1).rsplit(self.path, 1)[0] + "/health"

    @property
    def connections(self) -> Connections:
        """Live view of open connections: session, user, since, messages in/out."""
        return Connections(self._registry)

    @property
    def running(self) -> bool:
        """True until :meth:`stop` begins."""
        return self._ws_server is not None and not self._stopping

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` answers: status, connections, users, uptime."""
        return {
            "status": "stopping" if self._stopping else "ok",
            "connections": len(self._registry),
            "users": self._admission.users,
            "uptime": round(time.monotonic() - self._started, 3),
        }

    # -- HTTP side of the handshake -------------------------------------------------------

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/health":
            response = ws.respond(200, json.dumps(self.health()) + "\n")
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
            return response
        if _session_from_path(self.path, path) is None:
            return ws.respond(404, f"Not Found: WebSocket endpoint is {self.path}\n")
        return None

    # -- one connection ---------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        parts = urlsplit(ws.request.path)
        query = parse_qs(parts.query)
        session_id = (_session_from_path(self.path, parts.path)
                      or _first(query, "session_id") or uuid.uuid4().hex)
        user = _first(query, "user") or ws.request.headers.get("X-NBStream-User")
        if self._stopping:
            await ws.close(CloseCode.GOING_AWAY, "server shutting down")
            return
        previous: Connection | None = None
        refusal = self._admission.admit(user)
        if refusal is None:
            previous = self._registry.get(session_id)
            if previous is not None and previous.session.user != user:
                self._admission.release(user)
                refusal = StreamError(ErrorCode.UNAUTHORIZED,
                                      "this session id belongs to another user")
        if refusal is not None:
            logger.info("refused a connection (user %r): %s", user, refusal)
            await ws.send(Message(MessageType.ERROR, refusal.to_dict()).to_json())
            await ws.close(refusal.close_code or CloseCode.POLICY_VIOLATION, refusal.code)
            return
        if previous is not None:
            await previous.close(SESSION_TAKEN_OVER, "session taken over by a new connection")
        session = Session(
            session_id, user, datetime.now(UTC),
            BoundedHistory(self.options.history_max_messages, self.options.history_max_bytes),
            self.options.context_max_messages,
        )
        conn = Connection(ws, session, self.handler, self.options, self.events,
                          welcome=ws.subprotocol == SUBPROTOCOL)
        self._registry[session_id] = conn
        if self.events:
            self.events.emit("open", "server", session_id, user=user)
        logger.debug("session %s (user %r) connected", session_id, user)
        try:
            await conn.run()
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("connection of session %s failed", session_id)
        finally:
            await conn.stop_worker()
            if self._registry.get(session_id) is conn:
                del self._registry[session_id]
            self._admission.release(user)
            code = ws.close_code if ws.close_code is not None else conn.close_code
            if self.events:
                self.events.emit("close", "server", session_id, user=user,
                                 detail={"code": code, "reason": ws.close_reason or ""})
            logger.debug("session %s closed (%s)", session_id, code)

    # -- heartbeat ------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        opts = self.options
        tick = min(1.0, max(0.01, min(opts.heartbeat_interval, opts.heartbeat_timeout) / 4))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for conn in list(self._registry.values()):
                if conn.close_code is not None:
                    continue
                action = conn.heartbeat.poll(now)
                if action is HeartbeatAction.SEND_PING:
                    ping = Message(MessageType.PING, {})
                    conn.heartbeat.ping_sent(ping.id, now)
                    self._spawn(conn.send(ping))
                elif action is HeartbeatAction.TIMED_OUT:
                    logger.info("session %s missed its heartbeat; closing", conn.session.id)
                    self._spawn(conn.close(CloseCode.INTERNAL_ERROR, "heartbeat timeout"))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._reap)

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            if not isinstance(task.exception(), ConnectionClosed):
                logger.error("background send failed", exc_info=task.exception())

    # -- pushing messages -------------------------------------------------------------------

    async def _deliver(self, conns: list[Connection], message: Message) -> int:
        async def one(conn: Connection) -> bool:
            try:
                await asyncio.wait_for(conn.send(message), self.options.send_timeout)
                return True
            except (ConnectionClosed, TimeoutError):
                return False

        results = await asyncio.gather(*(one(c) for c in conns))
        return sum(results)

    async def abroadcast(self, message: Message | dict[str, Any] | str) -> int:
        """Send ``message`` to every connection at once; returns how many got it.

        A connection that does not take it within ``send_timeout`` is skipped, so
        one stuck client never holds up the others.
        """
        return await self._on_loop(self._deliver(list(self._registry.values()),
                                                 as_message(message)))

    async def asend_to_user(self, user: str, message: Message | dict[str, Any] | str) -> int:
        """Send ``message`` to all connections of ``user`` concurrently; returns how many."""
        conns = [c for c in self._registry.values() if c.session.user == user]
        return await self._on_loop(self._deliver(conns, as_message(message)))

    def broadcast(self, message: Message | dict[str, Any] | str) -> int:
        """Sync twin of :meth:`abroadcast`."""
        return runtime.run_sync(self.abroadcast(message), self._loop)

    def send_to_user(self, user: str, message: Message | dict[str, Any] | str) -> int:
        """Sync twin of :meth:`asend_to_user`."""
        return runtime.run_sync(self.asend_to_user(user, message), self._loop)

    async def adisconnect(self, session_id: str, reason: str = "disconnected by server") -> bool:
        """Close one session's connection with 1000; False if it is not connected."""
        conn = self._registry.get(session_id)
        if conn is None:
            return False
        await self._on_loop(conn.close(CloseCode.NORMAL_CLOSURE, reason))
        return True

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

    async def _stop_once(self, timeout: float) -> ShutdownReport:
        if self._stop_task is None:
            self._stop_task = asyncio.create_task(self._shutdown(timeout))
        return await asyncio.shield(self._stop_task)

    async def _shutdown(self, timeout: float) -> ShutdownReport:
        started = time.monotonic()
        deadline = started + timeout
        self._stopping = True
        assert self._ws_server is not None
        self._ws_server.close(close_connections=False)
        conns = list(self._registry.values())
        notice = Message(MessageType.SERVER_SHUTDOWN,
                         {"reason": "server shutting down", "grace_period": timeout})
        for conn in conns:
            conn.draining = True
        await self._deliver(conns, notice)
        busy = [c for c in conns if not c.idle]
        if busy:
            remaining = max(0.0, deadline - time.monotonic())
            waits = [asyncio.ensure_future(c.wait_idle()) for c in busy]
            _, pending = await asyncio.wait(waits, timeout=remaining)
            for w in pending:
                w.cancel()
        report = ShutdownReport()
        for conn in busy:
            (report.finished if conn.idle else report.cut).append(conn.session.id)
            if not conn.idle:
                await conn.stop_worker()

        async def close(conn: Connection) -> None:
            try:
                await conn.close(CloseCode.GOING_AWAY, "server shutdown")
            except ConnectionClosed:
                pass

        await asyncio.gather(*(close(c) for c in conns))
        report.closed = len(conns)
        try:
            await asyncio.wait_for(self._ws_server.wait_closed(),
                                   self.options.close_timeout + 1.0)
        except TimeoutError:
            logger.warning("some connections did not close in time")
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self._tasks):
            task.cancel()
        report.seconds = time.monotonic() - started
        logger.info("nbstream server on port %s %s", self.port, report)
        return report

    async def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the server's loop, from whichever loop the caller is on."""
        if runtime.running_loop() is self._loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

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
        return f"<nbstream.Server {self.url} {state}, {len(self._registry)} connection(s)>"

    def _repr_html_(self) -> str:
        state = "running" if self.running else "stopped"
        health = self.health()
        return (
            f"<div><b>nbstream server</b> <code>{html.escape(self.url)}</code> — {state}, "
            f"{health['connections']} connection(s), up {health['uptime']:.0f} s"
            f"{self.connections._repr_html_() if self._registry else ''}</div>"
        )


def _select_subprotocol(ws: ServerConnection, offered: Any) -> Any:
    """Speak nbstream.v1 with clients that offer it; plain WebSocket with the rest."""
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def _session_from_path(endpoint: str, path: str) -> str | None:
    """'' for the endpoint itself, the id for ``endpoint/<id>``, None for other paths."""
    if path == endpoint or path == endpoint + "/":
        return ""
    if path.startswith(endpoint + "/"):
        rest = path[len(endpoint) + 1:]
        if rest and "/" not in rest:
            return rest
    return None


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


async def aserve(handler: str | Handler = "agent", *, host: str = "127.0.0.1", port: int = 0,
                 path: str = "/ws", thread: bool = False, **options: Any) -> Server:
    """Start a server on the running loop (or on nbstream's thread with ``thread=True``).

    Returns once it is listening; see :func:`serve` for the arguments.
    """
    opts = ServerOptions.from_kwargs(options)
    loop = runtime.home_loop(thread)
    server = Server(resolve_handler(handler), host, port, path, opts, loop)
    if runtime.running_loop() is loop:
        await server._start()
    else:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(server._start(), loop))
    return server


def serve(handler: str | Handler = "agent", *, host: str = "127.0.0.1", port: int = 0,
          path: str = "/ws", thread: bool = False, **options: Any) -> Server:
    """Start an nbstream server and return it, already listening.

    In a notebook cell it lives on the kernel's event loop and keeps serving between
    cells (a cell that blocks, e.g. ``time.sleep``, pauses it; pass ``thread=True``
    to run it on a background thread instead, at about a third of the throughput).
    In a script it runs on a background thread.

    Args:
        handler: ``"agent"`` (scripted, streams tokens and uses a calculator tool),
            ``"echo"``, or your own ``async def handler(message, session): yield ...``.
        host: Interface to listen on; keep 127.0.0.1 unless you mean to expose it.
        port: TCP port; 0 picks a free one (read it back from ``server.port``).
        path: WebSocket endpoint; ``path/<session_id>`` is accepted too.
        thread: Run on nbstream's background thread even inside a kernel.
        **options: See :class:`nbstream.ServerOptions` (heartbeat, limits, batching...).

    Returns:
        The running :class:`Server`; connect with ``nbstream.connect(server.url)``
        and finish with ``server.stop()``.
    """
    opts = ServerOptions.from_kwargs(options)
    loop = runtime.home_loop(thread)
    server = Server(resolve_handler(handler), host, port, path, opts, loop)
    runtime.run_sync(server._start(), loop)
    return server

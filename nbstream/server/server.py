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
import re
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

from nbstream import running, runtime
from nbstream.backplane import Claim, ClaimOutcome, Delivery, MemoryBackplane, SessionRecord
from nbstream.backplane import create as create_backplane
from nbstream.backplane.handoff import (
    LocalCopy,
    ResumeAction,
    answered_chats,
    decide,
    needs_claim,
    restore_point,
)
from nbstream.events import EventStream
from nbstream.handlers import Handler, as_message, resolve_handler
from nbstream.logs import websockets_logger
from nbstream.protocol import (
    SUBPROTOCOL,
    Admission,
    BoundedHistory,
    CloseCode,
    ErrorCode,
    HeartbeatAction,
    Message,
    MessageType,
    Position,
    Session,
    StreamError,
    TokenBucket,
    parse_client_frame,
    plan_resume,
)
from nbstream.server.auth import Authenticator, token_from
from nbstream.server.connection import Connection
from nbstream.server.live import LiveSession
from nbstream.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from nbstream.server.metrics import ServerMetrics
from nbstream.server.options import ServerOptions

logger = logging.getLogger(__name__)

T = TypeVar("T")

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

    def __init__(self, sessions: dict[str, LiveSession]) -> None:
        self._sessions = sessions

    def _attached(self) -> list[str]:
        return [sid for sid, live in list(self._sessions.items()) if live.connection is not None]

    def __getitem__(self, session_id: str) -> ConnectionInfo:
        live = self._sessions[session_id]
        conn = live.connection
        if conn is None:
            raise KeyError(session_id)
        s = live.session
        return ConnectionInfo(s.id, s.user, s.connected_at, s.messages_in, s.messages_out,
                              s.bytes_in, s.bytes_out, conn.heartbeat.rtt,
                              live.streaming is not None, len(s.history),
                              s.history.total_bytes)

    def __iter__(self) -> Iterator[str]:
        return iter(self._attached())

    def __len__(self) -> int:
        return len(self._attached())

    def _rows(self) -> list[ConnectionInfo]:
        rows = []
        for sid in self._attached():
            try:
                rows.append(self[sid])
            except KeyError:  # closed while we looked
                pass
        return rows

    def to_frame(self) -> Any:
        """The connections as a pandas DataFrame, one row per connection."""
        import pandas as pd

        columns = list(ConnectionInfo.__dataclass_fields__)
        return pd.DataFrame([vars(info) for info in self._rows()], columns=columns)

    def __repr__(self) -> str:
        return f"<{len(self)} connection(s): {', '.join(self._attached()[:5])}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in vars(info).values())
            + "</tr>"
            for info in self._rows()
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
        self._sessions: dict[str, LiveSession] = {}
        self._admission = Admission(options.max_connections, options.max_connections_per_user)
        self._auth = Authenticator(options.auth) if options.auth is not None else None
        self.backplane = create_backplane(options.backplane)
        """Where fan-out, per-user counts and session history are shared (see docs)."""
        self.metrics = (ServerMetrics(self._gauges, self.backplane.stats) if options.metrics
                        else None)
        """Prometheus metrics served at ``GET /metrics`` (``metrics=True``)."""
        if self.metrics is not None:
            self.events.subscribe(self.metrics.observe)
        self._identities: dict[ServerConnection, str] = {}
        self._user_buckets: dict[str, TokenBucket] = {}
        self._ws_server: WsServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = time.monotonic()
        self._stopping = False
        self._stop_task: asyncio.Task[ShutdownReport] | None = None
        self.port = 0
        running.track(self, "server", Server._stop_for_all)

    # -- start ----------------------------------------------------------------------

    async def _start(self) -> None:
        opts = self.options
        await self.backplane.start(self._deliver_from_elsewhere,
                                   history_max_messages=opts.history_max_messages,
                                   release=self._release_here)
        origins = None if opts.allowed_origins is None else [*opts.allowed_origins, None]
        self._ws_server = await ws_serve(
            self._handle,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            origins=origins,  # type: ignore[arg-type]
            ssl=opts.ssl,
            compression="deflate" if opts.compression else None,
            max_size=opts.max_message_bytes,
            open_timeout=opts.open_timeout,
            close_timeout=opts.close_timeout,
            ping_interval=opts.ping_interval,
            ping_timeout=opts.ping_timeout,
            logger=websockets_logger("nbstream.websockets.server"),
        )
        self.port = self._ws_server.sockets[0].getsockname()[1]
        self._started = time.monotonic()
        self._ticker = asyncio.create_task(self._tick(), name="nbstream-heartbeat")
        logger.info("nbstream server listening on %s", self.url)

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
        return Connections(self._sessions)

    @property
    def running(self) -> bool:
        """True until :meth:`stop` begins."""
        return self._ws_server is not None and not self._stopping

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` answers: status, connections, sessions, users, uptime."""
        return {
            "status": ("stopped" if self._stop_task is not None and self._stop_task.done()
                       else "stopping" if self._stopping else "ok"),
            "connections": self._admission.total,
            "sessions": len(self._sessions),
            "users": self._admission.users,
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
        lives = list(self._sessions.values())
        return {
            "connections": self._admission.total,
            "sessions": len(lives),
            "queued_bytes": sum(live.connection.outbox.queued_bytes for live in lives
                                if live.connection is not None),
        }

    # -- HTTP side of the handshake -------------------------------------------------------

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path == "/health":
            return _json_response(ws, 200, self.health())
        if parts.path == "/ready":
            problems = self.readiness()
            return _json_response(ws, 503 if problems else 200,
                                  {"ready": not problems, "problems": problems})
        if parts.path == "/metrics" and self.metrics is not None:
            response = ws.respond(200, self.metrics.render().decode())
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = METRICS_CONTENT_TYPE
            return response
        session_id = _session_from_path(self.path, parts.path)
        if session_id is None:
            return ws.respond(404, f"Not Found: the WebSocket endpoint is {self.path}\n")
        query = parse_qs(parts.query)
        session_id = session_id or _first(query, "session_id") or ""
        if session_id and not _SESSION_ID.fullmatch(session_id):
            return ws.respond(400, "Bad Request: a session id is 1-128 characters of "
                                   "A-Z a-z 0-9 . _ ~ -\n")
        if self._auth is not None:
            token = token_from(request.headers, query)
            if token is not None:
                user = await self._auth.user_for(token)
                if user is None:
                    logger.info("refused a handshake with an invalid token")
                    return ws.respond(401, "Unauthorized\n")
                self._identities[ws] = user
        return None

    async def _first_message_auth(self, ws: ServerConnection) -> str | None:
        """Wait ``auth_timeout`` for an ``auth`` message; the user, or None (refused)."""
        assert self._auth is not None
        try:
            frame = await asyncio.wait_for(ws.recv(), self.options.auth_timeout)
        except TimeoutError:
            return None
        message = parse_client_frame(frame)
        if not isinstance(message, Message) or message.type != MessageType.AUTH:
            return None
        return await self._auth.user_for(message.data["token"])

    # -- one connection ---------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        parts = urlsplit(ws.request.path)
        query = parse_qs(parts.query)
        presented = _session_from_path(self.path, parts.path) or _first(query, "session_id")
        session_id = presented or uuid.uuid4().hex
        if self._stopping:
            await ws.close(CloseCode.GOING_AWAY, "server shutting down")
            return
        if self._auth is None:
            user = _first(query, "user") or ws.request.headers.get("X-NBStream-User")
        else:
            user = self._identities.pop(ws, None) or await self._first_message_auth(ws)
            if user is None:
                await _refuse(ws, StreamError(ErrorCode.UNAUTHORIZED,
                                              "valid credentials required"))
                return
        last_id = _first(query, "last_id")
        live, refusal = None, self._admission.admit(user)
        if refusal is None and user is not None:
            refusal = await self.backplane.admit_user(
                user, ws.id.hex, self._admission.max_connections_per_user)
            if refusal is not None:
                self._admission.release(user)
        if refusal is None:
            live, refusal = await self._locate(session_id, presented is not None, user,
                                               Position.parse(last_id))
            if refusal is not None:
                self._admission.release(user)
                if user is not None:
                    self.backplane.leave(user, ws.id.hex)
        if refusal is not None:
            logger.info("refused a connection (user %r): %s", user, refusal,
                        extra={"session_id": session_id, "user": user})
            await _refuse(ws, refusal)
            return
        if live is not None and live.connection is not None:
            await live.connection.close(CloseCode.SESSION_TAKEN_OVER,
                                        "session taken over by a new connection", drain=0.0)
        fresh = live is None
        if live is None:
            live = self._new_session(session_id, user)
        conn = Connection(ws, live, self.options, self.events,
                          user_bucket=self._user_bucket(user),
                          on_batch=self.metrics.observe_batch if self.metrics else None)
        self._attach(conn, live, fresh, last_id, welcome=ws.subprotocol == SUBPROTOCOL)
        try:
            await conn.run()
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("connection of session %s failed", session_id,
                             extra=live.session.log_fields)
        finally:
            await self._detach(conn, live, user)

    def _new_session(self, session_id: str, user: str | None, epoch: str | None = None
                     ) -> LiveSession:
        history = BoundedHistory(self.options.history_max_messages,
                                 self.options.history_max_bytes)
        session = Session(session_id, user, datetime.now(UTC), history,
                          self.options.context_max_messages)
        if epoch is not None:
            session.epoch = epoch
        live = LiveSession(session, self.handler, self.options, self.events, self.backplane)
        self._sessions[session_id] = live
        return live

    async def _locate(self, session_id: str, presented: bool, user: str | None,
                      seen: Position | None) -> tuple[LiveSession | None, StreamError | None]:
        """The session a connection continues (None: a new one), or why it is refused.

        A shared session is current on whichever process holds it last: a copy here
        from an earlier visit is replaced by the shared state (see backplane.handoff).
        A refusal changes nothing, here or elsewhere.
        """
        live = self._sessions.get(session_id)
        local = None if live is None else LocalCopy(live.session.user)
        claim = Claim(ClaimOutcome.UNKNOWN)
        if needs_claim(presented, self.backplane.shared, local, user):
            claim = await self.backplane.claim(session_id, user, have_local=live is not None)
            live = self._sessions.get(session_id)  # it may have changed meanwhile
            local = None if live is None else LocalCopy(live.session.user)
        action = decide(local, claim, user)
        if action is ResumeAction.REFUSE:
            return None, StreamError(ErrorCode.UNAUTHORIZED,
                                     "this session belongs to another user")
        if action is ResumeAction.ADOPT:
            assert claim.record is not None
            if live is not None:
                self._drop_copy(live)
            return self._adopt(claim.record, seen), None
        return (live if action is ResumeAction.KEEP else None), None

    def _adopt(self, record: SessionRecord, seen: Position | None) -> LiveSession:
        """Continue a session as another server process left it (its client came here)."""
        live = self._new_session(record.session_id, record.user, record.epoch)
        frames, next_offset = restore_point(record, seen)
        live.session.history.restore(frames, next_offset)
        for chat_id in answered_chats(frames):
            live.session.client_ids.add(chat_id)
        for delivery in record.later:  # fan-out published while it changed hands
            live.push(delivery.message)
        logger.info("session %s resumed here from another process (%d messages kept)",
                    record.session_id, len(frames), extra=live.session.log_fields)
        return live

    def _drop_copy(self, live: LiveSession) -> None:
        """Another process holds the session now: end this copy, keep the shared history."""
        if self._sessions.get(live.session.id) is live:
            del self._sessions[live.session.id]
        live.backplane = MemoryBackplane()  # whatever the copy still does is not shared
        if live.connection is not None:
            live.connection.close_soon(CloseCode.SESSION_TAKEN_OVER,
                                       "session resumed on another server")
        self._spawn(live.stop())

    def _release_here(self, session_id: str) -> None:
        """The backplane says another process took ``session_id`` over."""
        live = self._sessions.get(session_id)
        if live is not None:
            self._drop_copy(live)

    def _attach(self, conn: Connection, live: LiveSession, fresh: bool, last_id: str | None,
                *, welcome: bool) -> None:
        """Welcome, replay what the client missed, then go live; no await in between."""
        session = live.session
        recovered: bool | None = None
        reason = ""
        frames: list[bytes] = []
        if last_id is not None:
            position = Position.parse(last_id)
            if position is None:
                recovered, reason = False, f"{last_id!r} is not a position"
            elif fresh:
                recovered, reason = False, ("the server no longer has this session "
                                            "(expired, or the server restarted)")
            else:
                plan = plan_resume(session.history, session.epoch, position)
                recovered, reason, frames = plan.recovered, plan.reason, plan.frames
        if welcome:
            conn.send_control(Message(MessageType.WELCOME, {
                "session_id": session.id,
                "user": session.user,
                "epoch": session.epoch,
                "recovered": recovered,
                "replayed": len(frames),
                "reason": reason,
                "heartbeat_interval": self.options.heartbeat_interval,
                "heartbeat_timeout": self.options.heartbeat_timeout,
                "max_message_bytes": self.options.max_message_bytes,
                "batching": self.options.batching,
            }))
        conn.queue_frames(frames)
        live.connection = conn
        live.detached_at = None
        if self.events:
            self.events.emit("open", "server", session.id, user=session.user,
                             detail={"resumed": last_id is not None, "recovered": recovered})
        logger.debug("session %s (user %r) connected", session.id, session.user,
                     extra=session.log_fields)

    async def _detach(self, conn: Connection, live: LiveSession, user: str | None) -> None:
        await conn.outbox.aclose()
        self._admission.release(user)
        if user is not None:
            self.backplane.leave(user, conn.ws.id.hex)
        ws = conn.ws
        if live.connection is conn:
            live.connection = None
            live.detached_at = time.monotonic()
        code = _close_code(ws)
        resumable = code in _RESUMABLE_CLOSES and conn.close_code != CloseCode.INTERNAL_ERROR
        if live.connection is None and (self._stopping or not resumable):
            await self._end_session(live, forget=not (self._stopping and self.backplane.shared))
        if self.events:
            self.events.emit("close", "server", live.session.id, user=user,
                             detail={"code": code, "reason": ws.close_reason or conn.close_reason})
        logger.debug("session %s closed (%s)", live.session.id, code,
                     extra=live.session.log_fields)

    async def _end_session(self, live: LiveSession, *, forget: bool = True) -> None:
        """Drop the session here; ``forget`` also drops its shared history."""
        if self._sessions.get(live.session.id) is live:
            del self._sessions[live.session.id]
            if forget:
                self.backplane.forget(live.session.id)
        await live.stop()

    def _user_bucket(self, user: str | None) -> TokenBucket | None:
        rate = self.options.rate_limit_per_user
        if rate is None or user is None:
            return None
        bucket = self._user_buckets.get(user)
        if bucket is None:
            bucket = TokenBucket(rate, max(1.0, 2 * rate), time.monotonic())
            self._user_buckets[user] = bucket
        return bucket

    # -- the tick: heartbeats, slow consumers, expired sessions ------------------------------

    async def _tick(self) -> None:
        opts = self.options
        tick = min(1.0, max(0.01, min(opts.heartbeat_interval, opts.heartbeat_timeout) / 4))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for live in list(self._sessions.values()):
                conn = live.connection
                if conn is None:
                    if live.detached_at is not None and now - live.detached_at > opts.session_ttl:
                        self._spawn(self._end_session(live))
                    continue
                if conn.close_code is not None:
                    continue
                if conn.outbox.stalled(now, opts.send_timeout):
                    logger.warning("session %s: socket stuck for %.1f s; dropping it",
                                   live.session.id, opts.send_timeout,
                                   extra=live.session.log_fields)
                    conn.close_soon(CloseCode.SLOW_CONSUMER,
                                    f"slow consumer: stuck for over {opts.send_timeout:g} s")
                    continue
                action = conn.heartbeat.poll(now)
                if action is HeartbeatAction.SEND_PING:
                    ping = Message(MessageType.PING, {})
                    conn.heartbeat.ping_sent(ping.id, now)
                    conn.send_control(ping)
                elif action is HeartbeatAction.TIMED_OUT:
                    logger.info("session %s missed its heartbeat; closing", live.session.id,
                                extra=live.session.log_fields)
                    conn.close_soon(CloseCode.INTERNAL_ERROR, "heartbeat timeout")
            for user in [u for u in self._user_buckets if not self._admission.count(u)]:
                del self._user_buckets[user]

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- pushing messages -------------------------------------------------------------------

    def _push(self, lives: list[LiveSession], message: Message) -> int:
        return sum(live.push(message) for live in lives)

    def _deliver_from_elsewhere(self, delivery: Delivery) -> None:
        """Fan-out published by another server process: push it to local sessions."""
        self._push([live for live in self._sessions.values()
                    if delivery.user is None or live.session.user == delivery.user],
                   delivery.message)

    async def abroadcast(self, message: Message | dict[str, Any] | str) -> int:
        """Send ``message`` to every session at once; returns how many connections got it.

        Never waits for a client: each connection has its own bounded queue, and a
        client too slow to drain it is dropped (close 4002). Sessions whose client
        is away keep the message in their history for when it resumes.
        """
        return await self._on_loop(self._apush(None, as_message(message)))

    async def asend_to_user(self, user: str, message: Message | dict[str, Any] | str) -> int:
        """Send ``message`` to every session of ``user``; returns how many connections got it."""
        return await self._on_loop(self._apush(user, as_message(message)))

    async def _apush(self, user: str | None, message: Message) -> int:
        lives = [live for live in self._sessions.values()
                 if user is None or live.session.user == user]
        delivered = self._push(lives, message)
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
        live = self._sessions.get(session_id)
        conn = live.connection if live is not None else None
        if conn is None:
            return False
        if abrupt:
            conn.ws.transport.abort()
        else:
            await conn.close(CloseCode.NORMAL_CLOSURE, reason)
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
        started = time.monotonic()
        deadline = started + timeout
        self._stopping = True
        assert self._ws_server is not None
        self._ws_server.close(close_connections=False)
        lives = list(self._sessions.values())
        notice = Message(MessageType.SERVER_SHUTDOWN,
                         {"reason": "server shutting down", "grace_period": timeout})
        for live in lives:
            live.draining = True
            if live.connection is not None:
                live.connection.send_control(notice)
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
        conns = [live.connection for live in lives if live.connection is not None]

        async def close(conn: Connection) -> None:
            try:
                await conn.close(CloseCode.GOING_AWAY, "server shutdown",
                                 drain=max(0.1, deadline - time.monotonic()))
            except ConnectionClosed:
                pass

        await asyncio.gather(*(close(c) for c in conns))
        report.closed = len(conns)
        try:
            await asyncio.wait_for(self._ws_server.wait_closed(),
                                   self.options.close_timeout + 1.0)
        except TimeoutError:
            logger.warning("some connections did not close in time")
        for live in list(self._sessions.values()):
            # With a shared backplane the history stays, so clients resume on another process.
            await self._end_session(live, forget=not self.backplane.shared)
        await self.backplane.close()
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self._tasks):
            task.cancel()
        report.seconds = time.monotonic() - started
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
        return f"<nbstream.Server {self.url} {state}, {self._admission.total} connection(s)>"

    def _repr_html_(self) -> str:
        state = "running" if self.running else "stopped"
        health = self.health()
        table = self.connections._repr_html_() if health["connections"] else ""
        return (
            f"<div><b>nbstream server</b> <code>{html.escape(self.url)}</code> — {state}, "
            f"{health['connections']} connection(s), up {health['uptime']:.0f} s{table}</div>"
        )


def _close_code(ws: ServerConnection) -> int:
    """The close code of whichever side closed first; 1006 if the TCP connection just died."""
    protocol = ws.protocol
    sent, rcvd = protocol.close_sent, protocol.close_rcvd
    if sent is not None and (rcvd is None or protocol.close_rcvd_then_sent is False):
        return sent.code
    if rcvd is not None:
        return rcvd.code
    return 1006


def _json_response(ws: ServerConnection, status: int, body: dict[str, Any]) -> Response:
    response = ws.respond(status, json.dumps(body) + "\n")
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response


async def _refuse(ws: ServerConnection, error: StreamError) -> None:
    """Send ``error`` and close with its close code (before any session exists)."""
    await ws.send(Message(MessageType.ERROR, error.to_dict()).to_json())
    await ws.close(error.close_code or CloseCode.POLICY_VIOLATION, error.code)


_SESSION_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")

_RESUMABLE_CLOSES = frozenset({1006, CloseCode.INTERNAL_ERROR, 1012, CloseCode.TRY_AGAIN_LATER,
                               1014, CloseCode.SLOW_CONSUMER})
"""Closes after which a session waits ``session_ttl`` for its client to resume: the
network failed (1006), the peer missed heartbeats or was too slow. A normal close,
a protocol violation (1002, 1007, 1008, 1009) or a shutdown ends the session."""


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
    await runtime.run_on(loop, server._start())
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

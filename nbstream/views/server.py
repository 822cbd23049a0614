"""ServerView: a running server's health and connections, with buttons to act on it.

``nbstream.ServerView(server)`` shows the live connections table (session, user,
connected since, messages in/out, last heartbeat round trip) and the server's
health, and has buttons to broadcast a message, disconnect a session and stop the
server. It refreshes on the server's events, at most about ten times a second,
and once a second while idle so that uptimes move.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from html import escape
from typing import Any

import ipywidgets as w

from nbstream import runtime
from nbstream.events import FlowEvent
from nbstream.server import ConnectionInfo, Server
from nbstream.views import html
from nbstream.views.throttle import DEFAULT_INTERVAL, Throttle
from nbstream.views.viewbox import ViewBox

IDLE_REFRESH = 1.0
"""Seconds between refreshes while a running server is quiet."""
MAX_ROWS = 50
"""Connections listed in the table; the rest are counted below it."""


def snapshot(server: Server) -> list[ConnectionInfo]:
    """The server's open connections now, oldest first."""
    connections = server.connections
    infos = []
    for session_id in connections:
        try:
            infos.append(connections[session_id])
        except KeyError:  # closed while we were reading (a server on another thread)
            continue
    return infos


def health_html(server: Server, infos: list[ConnectionInfo]) -> str:
    """The health line: state, connections, users, uptime, messages in and out."""
    health = server.health()
    state = '<span class="nbs-ok">● running</span>' if server.running else (
        '<span class="nbs-bad">● stopped</span>')
    heading = f"<div><b>nbstream server</b> <code>{escape(server.url)}</code> {state}</div>"
    return heading + html.figures([
        ("connections", f"{health['connections']}"),
        ("users", f"{health['users']}"),
        ("uptime (s)", f"{health['uptime']:.0f}"),
        ("messages in", f"{sum(i.messages_in for i in infos):,}"),
        ("messages out", f"{sum(i.messages_out for i in infos):,}"),
    ])


def connections_html(infos: list[ConnectionInfo], limit: int = MAX_ROWS) -> str:
    """The connections table, newest last, at most ``limit`` rows."""
    if not infos:
        return "<i>No connections.</i>"
    rows = [
        (info.session_id, info.user, info.connected_since.strftime("%H:%M:%S"),
         info.messages_in, info.messages_out,
         None if info.heartbeat_rtt is None else f"{info.heartbeat_rtt * 1000:.1f} ms",
         "yes" if info.streaming else "")
        for info in infos[-limit:]
    ]
    more = f"<div>… and {len(infos) - limit} more</div>" if len(infos) > limit else ""
    return html.table(["session", "user", "connected since", "in", "out", "heartbeat rtt",
                       "streaming"], rows) + more


class ServerView(ViewBox):
    """Live connections and health of a ``Server``, with broadcast, disconnect and stop.

    Display it as a cell's last expression; call :meth:`close` when done (it stops
    listening; it does not stop the server).
    """

    def __init__(self, server: Server, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.server = server
        self._loop = runtime.home_loop()
        self._throttle = Throttle(self._loop, self._flush, interval)
        self.health = w.HTML()
        self.table = w.HTML()
        self.message = w.Text(placeholder="a message for every connection")
        self.broadcast_button = w.Button(description="Broadcast", icon="bullhorn")
        self.session = w.Dropdown(description="session", options=[])
        self.disconnect_button = w.Button(description="Disconnect", icon="unlink")
        self.stop_button = w.Button(description="Stop server", button_style="danger",
                                    icon="stop")
        self.status = w.HTML()
        """The outcome of the last button pressed."""
        self.broadcast_button.on_click(self._broadcast)
        self.disconnect_button.on_click(self._disconnect)
        self.stop_button.on_click(self._stop)
        rows = [w.HBox([self.message, self.broadcast_button]),
                w.HBox([self.session, self.disconnect_button, self.stop_button])]
        children = [w.HTML(html.STYLE), self.health, self.table, *rows, self.status]
        self._owned = [*children, *rows[0].children, *rows[1].children]
        super().__init__(children)
        self._unsubscribe = server.events.subscribe(self._on_event)
        self._throttle.poke()

    @property
    def pushes(self) -> int:
        """How many times the view refreshed."""
        return self._throttle.flushes

    def _on_event(self, event: FlowEvent) -> None:
        self._throttle.poke()

    def _flush(self) -> float | None:
        server = self.server
        infos = snapshot(server)
        self.health.value = health_html(server, infos)  # a widget sends only what changed
        self.table.value = connections_html(infos)
        sessions = tuple(info.session_id for info in infos)
        if tuple(self.session.options) != sessions:
            self.session.options = sessions
        running = server.running
        for button in (self.broadcast_button, self.disconnect_button, self.stop_button):
            button.disabled = not running
        return IDLE_REFRESH if running else None

    # -- buttons ---------------------------------------------------------------------

    def _broadcast(self, _: Any) -> None:
        text = self.message.value or "hello from the server"

        async def act() -> str:
            count = await self.server.abroadcast(text)
            return f"broadcast {text!r} to {count} connection(s)"

        self._act(act())

    def _disconnect(self, _: Any) -> None:
        session_id = self.session.value
        if not session_id:
            self.status.value = "<i>Pick a session first.</i>"
            return

        async def act() -> str:
            done = await self.server.adisconnect(session_id)
            return f"disconnected {session_id}" if done else f"{session_id} was not connected"

        self._act(act())

    def _stop(self, _: Any) -> None:
        async def act() -> str:
            return str(await self.server.astop())

        self._act(act())

    def _act(self, action: Coroutine[Any, Any, str]) -> None:
        """Run a button's action on the view's loop; report how it went in :attr:`status`."""
        future = asyncio.run_coroutine_threadsafe(action, self._loop)

        def report(done: Any) -> None:
            error = done.exception()
            self.status.value = escape(f"failed: {error!r}" if error else done.result())
            self._throttle.poke()

        future.add_done_callback(report)


    def __repr__(self) -> str:
        return f"<nbstream.ServerView of {self.server!r}>"

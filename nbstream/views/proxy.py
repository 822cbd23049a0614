"""ProxyView: switches, sliders and a "cut now" button for a running fault proxy.

``nbstream.ProxyView(proxy)`` has a switch per fault family (TCP level: latency,
bandwidth, slicer, timeout, reset, data limit, slow close; WebSocket level: drop,
duplicate, delay, reorder, corrupt, stall), sliders for latency, jitter, bandwidth
and the chance a message is hit, a direction choice, pause and "cut now". Every
change applies at once to the connections going through the proxy; the faults
applied show below, refreshed at most about ten times a second.
"""

from __future__ import annotations

from collections import deque
from html import escape
from typing import Any

import ipywidgets as w

from nbstream import runtime
from nbstream.events import FlowEvent
from nbstream.faults import KINDS, FaultHandle, FaultProxy
from nbstream.views import html
from nbstream.views.flowlog import clock
from nbstream.views.throttle import DEFAULT_INTERVAL, Throttle
from nbstream.views.viewbox import ViewBox

TCP_FAMILIES: dict[str, dict[str, Any]] = {
    "latency": {},
    "bandwidth": {},
    "slicer": {"average_size": 16, "delay_us": 500.0},
    "timeout": {"ms": 0.0},
    "reset_peer": {"ms": 0.0},
    "limit_data": {"bytes": 20_000},
    "slow_close": {"ms": 2000.0},
}
"""TCP-level switches and the parameters each adds with (sliders set the rest)."""
MESSAGE_FAMILIES: dict[str, dict[str, Any]] = {
    "drop": {},
    "duplicate": {},
    "delay": {"ms": 500.0},
    "reorder": {},
    "corrupt": {},
    "stall": {},
}
"""WebSocket-level switches; each also takes the "chance" slider as its probability
(stall holds everything, so it takes none)."""
RECENT = 8
"""Faults listed below the controls."""


class ProxyView(ViewBox):
    """Live controls of a :class:`~nbstream.FaultProxy` while clients talk through it.

    Display it as a cell's last expression. A switch adds its fault (in the chosen
    direction) and removes it when switched off; sliders change running faults in
    place. Faults added from code stay as they are. Call :meth:`close` when done:
    it stops listening (the faults it added stay until switched off or cleared).
    """

    def __init__(self, proxy: FaultProxy, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.proxy = proxy
        self._handles: dict[str, FaultHandle] = {}
        self._recent: deque[FlowEvent] = deque(maxlen=RECENT)
        self._throttle = Throttle(runtime.home_loop(), self._flush, interval)
        self.heading = w.HTML()
        self.direction = w.ToggleButtons(options=["down", "up", "both"], value="down",
                                         description="direction",
                                         tooltips=["server to client", "client to server",
                                                   "both ways"])
        self.latency_ms = w.IntSlider(50, min=0, max=1000, step=10, description="latency ms")
        self.jitter_ms = w.IntSlider(0, min=0, max=500, step=5, description="jitter ms")
        self.kbps = w.IntSlider(100, min=1, max=2000, description="bandwidth kB/s")
        self.chance = w.FloatSlider(0.2, min=0.0, max=1.0, step=0.05, description="chance")
        self.switches = {name: w.ToggleButton(description=name, tooltip=KINDS[name].summary)
                         for name in [*TCP_FAMILIES, *MESSAGE_FAMILIES]}
        self.pause_button = w.ToggleButton(description="pause", icon="pause",
                                           tooltip="freeze both directions")
        self.cut_button = w.Button(description="cut now", button_style="danger",
                                   icon="scissors")
        self.recent = w.HTML()
        """The last faults applied, newest last."""
        self.status = w.HTML()
        """The outcome of the last action (or why it failed)."""
        rows = [
            w.HBox([self.direction, self.pause_button, self.cut_button]),
            w.HBox([self.latency_ms, self.jitter_ms]),
            w.HBox([self.kbps, self.chance]),
            w.HBox([w.HTML("<b>TCP</b>&nbsp;"), *(self.switches[n] for n in TCP_FAMILIES)]),
            w.HBox([w.HTML("<b>WebSocket</b>&nbsp;"),
                    *(self.switches[n] for n in MESSAGE_FAMILIES)]),
        ]
        children = [w.HTML(html.STYLE), self.heading, *rows, self.recent, self.status]
        self._owned = [*children, *(c for row in rows for c in row.children)]
        super().__init__(children)
        for control in (self.direction, self.latency_ms, self.jitter_ms, self.kbps, self.chance,
                        *self.switches.values()):
            control.observe(self._on_change, names="value")
        self.pause_button.observe(self._on_pause, names="value")
        self.cut_button.on_click(self._on_cut)
        self._unsubscribe = proxy.events.subscribe(self._on_event)
        self._throttle.poke()

    @property
    def pushes(self) -> int:
        """How many times the view refreshed."""
        return self._throttle.flushes

    # -- the controls ----------------------------------------------------------------------

    def _params(self, name: str) -> dict[str, Any]:
        if name == "latency":
            return {"ms": self.latency_ms.value, "jitter_ms": self.jitter_ms.value}
        if name == "bandwidth":
            return {"kbps": self.kbps.value}
        if name in TCP_FAMILIES:
            return dict(TCP_FAMILIES[name])
        params = dict(MESSAGE_FAMILIES[name])
        if name != "stall":
            params["probability"] = self.chance.value
        return params

    def _on_change(self, change: Any) -> None:
        try:
            self.apply()
        except (ValueError, RuntimeError) as exc:
            self.status.value = escape(f"failed: {exc}")

    def apply(self) -> None:
        """Make the proxy's faults match the switches and sliders (what a change does)."""
        direction = self.direction.value
        for name, switch in self.switches.items():
            handle = self._handles.get(name)
            if not switch.value:
                if handle is not None:
                    handle.remove()
                    del self._handles[name]
                continue
            params = self._params(name)
            if handle is not None and handle.active and handle.direction == direction:
                if any(handle.params.get(k) != v for k, v in params.items()):
                    handle.update(**params)
                continue
            if handle is not None:
                handle.remove()
            self._handles[name] = self.proxy.add(name, direction=direction, **params)
        self._throttle.poke()

    def _on_pause(self, change: Any) -> None:
        if change["new"]:
            self.proxy.pause()
        else:
            self.proxy.resume()
        self._throttle.poke()

    def _on_cut(self, _: Any) -> None:
        count = self.proxy.cut()
        self.status.value = escape(f"cut {count} connection(s)")

    # -- what it shows --------------------------------------------------------------------------

    def _on_event(self, event: FlowEvent) -> None:
        if event.kind == "fault":
            self._recent.append(event)
            self._throttle.poke()
        elif event.kind in ("open", "close"):
            self._throttle.poke()

    def _flush(self) -> None:
        proxy = self.proxy
        state = ("paused" if proxy.paused else "running") if proxy.running else "stopped"
        faults = ", ".join(f"{h.id} ({h.direction})" for h in proxy.faults) or "none"
        self.heading.value = (
            f"<div><b>fault proxy</b> <code>{escape(proxy.url)}</code> → "
            f"<code>{escape(proxy.target)}</code> {state}</div>"
            + html.figures([("connections", f"{proxy.connections}"),
                            ("faults", f"{len(proxy.faults)}")])
            + f"<div>in force: {escape(faults)}</div>")
        rows = [(clock(e.at), (e.detail or {}).get("fault"), (e.detail or {}).get("direction"),
                 e.session_id, _facts(e.detail or {})) for e in self._recent]
        self.recent.value = (html.table(["time", "fault", "way", "session", "what"], rows)
                             if rows else "<i>No fault applied yet.</i>")
        for button in (self.cut_button, self.pause_button, *self.switches.values()):
            button.disabled = not proxy.running


    def __repr__(self) -> str:
        return f"<nbstream.ProxyView of {self.proxy!r}>"


def _facts(detail: dict[str, Any]) -> str:
    skip = {"fault", "direction", "id", "connection"}
    return " ".join(f"{k}={v}" for k, v in detail.items() if k not in skip and v is not None)

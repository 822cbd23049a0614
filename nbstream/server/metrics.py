"""Prometheus metrics for ``GET /metrics``: one more consumer of the server's events.

Counters are folded from :class:`nbstream.events.FlowEvent` as they happen; gauges
(connections, sessions, queued bytes) and the backplane's figures are read from the
server when scraped. Each server has its own registry, so several servers in one
process do not mix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from nbstream.backplane import BackplaneStats
from nbstream.events import CONTROL_TYPES, FlowEvent
from nbstream.protocol import CloseCode, MessageType

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_TYPE_LABELS = 64
"""Message types counted under their own label; later ones count as ``other``."""
OTHER_TYPE = "other"


class _Live(Collector):
    """Gauges read at scrape time."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self._read = read

    def describe(self) -> Iterable[GaugeMetricFamily]:
        """Nothing to read before the first scrape (the server may still be starting)."""
        return ()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        values = self._read()
        yield GaugeMetricFamily("nbstream_connections", "Open WebSocket connections.",
                                value=values["connections"])
        yield GaugeMetricFamily("nbstream_sessions",
                                "Sessions held, with or without a connection.",
                                value=values["sessions"])
        yield GaugeMetricFamily("nbstream_outbox_queued_bytes",
                                "Bytes waiting in outboxes for slow clients.",
                                value=values["queued_bytes"])


class _Backplane(Collector):
    """The backplane's state and counters, read at scrape time (none for memory)."""

    def __init__(self, read: Callable[[], BackplaneStats | None]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        stats = self._read()
        if stats is None:
            return
        name = "nbstream_backplane_"
        yield GaugeMetricFamily(name + "up", "1 while the backplane's store (Redis) answers.",
                                value=int(stats.up))
        yield GaugeMetricFamily(name + "fanout_ok", "1 while this process's fan-out "
                                "heartbeats come back through the channel.",
                                value=int(stats.subscribed))
        yield GaugeMetricFamily(name + "fanout_silence_seconds", "Seconds since fan-out "
                                "was last known to work.", value=stats.fanout_silence)
        if stats.fanout_lag is not None:
            yield GaugeMetricFamily(name + "fanout_lag_seconds", "Round trip of the latest "
                                    "heartbeat through the fan-out channel.",
                                    value=stats.fanout_lag)
        yield GaugeMetricFamily(name + "queued", "Writes waiting to be sent to the store.",
                                value=stats.queued)
        counters = (("reconnects", "Fan-out subscriptions set up again after a failure.",
                     stats.reconnects),
                    ("dropped_writes", "History writes lost (queue full, or refused).",
                     stats.dropped),
                    ("fanout_unsent", "Broadcasts and send_to_user of this process that "
                     "could not be sent to the others.", stats.fanout_unsent),
                    ("fanout_missed", "Publications of other processes that never "
                     "arrived here.", stats.fanout_missed),
                    ("handoffs", "Sessions taken over from other processes.", stats.handoffs),
                    ("handoff_timeouts", "Take-overs whose previous holder did not answer.",
                     stats.handoff_timeouts))
        for suffix, documentation, value in counters:
            yield CounterMetricFamily(name + suffix, documentation, value=value)


class ServerMetrics:
    """The metrics of one server; subscribe :meth:`observe` to its events.

    Args:
        read_live: The server's gauges (connections, sessions, queued bytes).
        read_backplane: The backplane's figures, or None (nothing shared).
    """

    def __init__(self, read_live: Callable[[], dict[str, float]],
                 read_backplane: Callable[[], BackplaneStats | None] = lambda: None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._types: set[str] = set()
        r = self.registry
        self.opened = Counter("nbstream_connections_opened", "Connections accepted.",
                              registry=r)
        self.closed = Counter("nbstream_connections_closed", "Connections closed, by code.",
                              ["code"], registry=r)
        self.messages = Counter("nbstream_messages", "Messages by direction and type.",
                                ["direction", "type"], registry=r)
        self.bytes = Counter("nbstream_bytes", "Message bytes by direction.",
                             ["direction"], registry=r)
        self.errors = Counter("nbstream_errors", "Error envelopes sent, by code.",
                              ["code"], registry=r)
        self.rtt = Histogram("nbstream_heartbeat_rtt_seconds",
                             "Application heartbeat round trips.", registry=r,
                             buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self.evicted = Counter("nbstream_sessions_ended", "Detached sessions ended to keep a "
                               "bound, by bound (ttl, sessions, user, bytes).", ["bound"],
                               registry=r)
        self.batch_size = Histogram("nbstream_batch_size", "Messages per batch frame.",
                                    registry=r, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.slow_consumers = Counter("nbstream_slow_consumers_dropped",
                                      "Clients dropped for reading too slowly (4002).",
                                      registry=r)
        r.register(_Live(read_live))
        r.register(_Backplane(read_backplane))

    def observe(self, event: FlowEvent) -> None:
        """Fold one event into the counters (an EventStream subscriber)."""
        kind = event.kind
        if kind == "in" or kind == "out":
            message = event.message
            if message is not None:
                self.messages.labels(kind, self._type_label(message.type)).inc()
                if kind == "out" and message.type == MessageType.ERROR:
                    error = message.error
                    self.errors.labels(error.code if error else "UNKNOWN").inc()
            elif event.opcode in CONTROL_TYPES:  # a WebSocket ping or pong
                self.messages.labels(kind, CONTROL_TYPES[event.opcode or 0]).inc()
            elif kind == "in":
                self.messages.labels(kind, "invalid").inc()
            self.bytes.labels(kind).inc(event.size)
        elif kind == "heartbeat" and event.detail:
            self.rtt.observe(event.detail["rtt"])
        elif kind == "open":
            self.opened.inc()
        elif kind == "close":
            code = (event.detail or {}).get("code")
            self.closed.labels(str(code)).inc()
            if code == CloseCode.SLOW_CONSUMER:
                self.slow_consumers.inc()

    def _type_label(self, type_: str) -> str:
        """``type_``, or ``other`` once MAX_TYPE_LABELS types are known: clients of the
        json protocol name their own types, and each label is a time series kept forever."""
        types = self._types
        if type_ in types:
            return type_
        if len(types) < MAX_TYPE_LABELS:
            types.add(type_)
            return type_
        return OTHER_TYPE

    def observe_eviction(self, bound: str) -> None:
        """Record one session ended early to keep a bound ("ttl", "sessions", "user",
        "bytes")."""
        self.evicted.labels(bound).inc()

    def observe_batch(self, size: int) -> None:
        """Record one batch frame of ``size`` messages."""
        self.batch_size.observe(size)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

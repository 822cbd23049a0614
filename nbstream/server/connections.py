"""Who is connected: :attr:`Server.connections`, a live read-only mapping by session id."""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nbstream import wsinternals
from nbstream.server.registry import SessionRegistry


@dataclass(frozen=True)
class ConnectionInfo:
    """A snapshot of one open connection, as listed by :attr:`Server.connections`."""

    session_id: str
    user: str | None
    connected_since: datetime
    messages_in: int
    messages_out: int
    """Messages each way, counted alike: control messages (ping, pong, welcome) included."""
    bytes_in: int
    bytes_out: int
    heartbeat_rtt: float | None
    streaming: bool
    history_messages: int
    history_bytes: int
    queued_bytes: int
    """What the server holds for this client right now: its outbox and socket buffer."""


class Connections(Mapping[str, ConnectionInfo]):
    """A live, read-only view of a server's open connections, keyed by session id.

    Each lookup reads the current counters. ``to_frame()`` gives a DataFrame.
    """

    def __init__(self, registry: SessionRegistry) -> None:
        self._registry = registry

    def _attached(self) -> list[str]:
        return [live.session.id for live in self._registry if live.connection is not None]

    def __getitem__(self, session_id: str) -> ConnectionInfo:
        live = self._registry.get(session_id)
        if live is None:
            raise KeyError(session_id)
        conn = live.connection
        if conn is None:
            raise KeyError(session_id)
        s = live.session
        return ConnectionInfo(s.id, s.user, s.connected_at, s.messages_in, s.messages_out,
                              s.bytes_in, s.bytes_out, conn.core.heartbeat.rtt,
                              live.streaming is not None, len(s.history),
                              s.history.total_bytes,
                              conn.outbox.queued_bytes + wsinternals.write_buffer_size(conn.ws))

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

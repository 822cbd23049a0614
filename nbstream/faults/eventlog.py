"""The proxy's event stream, which also keeps its faults and connections as a table.

Faults applied and connections opened or closed are always published and kept, up
to ``keep`` events, for :meth:`ProxyEvents.to_frame`: they are rare. A message
forwarded is published only while someone subscribes (an unwatched proxy pays
nothing per message) and is not kept (it may be megabytes).
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nbstream.events import EventStream, FlowEvent

if TYPE_CHECKING:
    import pandas as pd

KEEP = 10_000
"""Events a proxy keeps for :meth:`ProxyEvents.to_frame`."""


class ProxyEvents(EventStream):
    """An :class:`~nbstream.events.EventStream` that remembers its last ``keep`` events
    other than messages."""

    def __init__(self, keep: int = KEEP) -> None:
        super().__init__()
        self.recent: deque[FlowEvent] = deque(maxlen=keep)
        """The events published, oldest first."""

    def publish(self, event: FlowEvent) -> None:
        """Keep ``event`` (unless it is a message), then hand it to every subscriber."""
        if event.kind != "out":
            self.recent.append(event)
        super().publish(event)

    def to_frame(self, kind: str | None = None) -> pd.DataFrame:
        """The kept events as a DataFrame, one row each, oldest first.

        Columns: ``at`` (UTC), ``kind`` (``fault``, ``open``, ``close``), ``direction``
        (``c2s``/``s2c``), ``session_id``, ``fault`` (its name), ``type`` (the type of
        the message it touched), ``size``, ``detail``.

        Args:
            kind: Keep only events of this kind, e.g. ``"fault"``.
        """
        import pandas as pd

        rows = [_row(event) for event in self.recent if kind is None or event.kind == kind]
        columns = ["at", "kind", "direction", "session_id", "fault", "type", "size", "detail"]
        return pd.DataFrame(rows, columns=columns)


def _row(event: FlowEvent) -> dict[str, Any]:
    detail = event.detail or {}
    message = event.message
    return {
        "at": datetime.fromtimestamp(event.at, UTC),
        "kind": event.kind,
        "direction": event.direction,
        "session_id": event.session_id,
        "fault": detail.get("fault"),
        "type": str(message.type) if message is not None else detail.get("type"),
        "size": event.size or detail.get("size", 0),
        "detail": detail or None,
    }

"""Count what widgets send to the browser, with no browser and no kernel.

``with record_comms() as log:`` makes every widget created inside it talk to a
comm that only records; ``log.updates()`` then says how many state updates went
out. Tests and ``benchmarks/views.py`` measure a view's traffic with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import comm
from comm.base_comm import BaseComm


@dataclass(frozen=True)
class Sent:
    """One comm message: which widget, which kind, the state keys it carried, its size."""

    comm_id: str
    msg_type: str
    method: str | None
    keys: tuple[str, ...]
    size: int
    """Bytes of its JSON, serialized as a kernel would (so that costs what it would)."""


@dataclass
class CommLog:
    """Every comm message sent while recording, oldest first."""

    sent: list[Sent] = field(default_factory=list)

    def updates(self, widget: Any = None) -> int:
        """State updates sent (by ``widget``, if given) — what reaches the browser."""
        return len(self._updates(widget))

    def update_bytes(self, widget: Any = None) -> int:
        """Bytes of JSON in those updates."""
        return sum(s.size for s in self._updates(widget))

    def _updates(self, widget: Any) -> list[Sent]:
        return [s for s in self.sent
                if s.method == "update" and (widget is None or s.comm_id == widget.model_id)]


class _RecordingComm(BaseComm):
    def __init__(self, log: CommLog, **kwargs: Any) -> None:
        self._log = log
        super().__init__(**kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                    buffers: Any = None, **keys: Any) -> None:
        data = data if isinstance(data, dict) else {}
        state = data.get("state")
        self._log.sent.append(Sent(self.comm_id, msg_type, data.get("method"),
                                   tuple(state) if isinstance(state, dict) else (),
                                   len(json.dumps(data, default=str))))


@contextmanager
def record_comms() -> Iterator[CommLog]:
    """Record the comm traffic of widgets created inside the ``with`` block."""
    log = CommLog()
    original = comm.create_comm

    def create(**kwargs: Any) -> BaseComm:
        return _RecordingComm(log, **kwargs)

    comm.create_comm = create
    try:
        yield log
    finally:
        comm.create_comm = original

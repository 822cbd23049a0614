"""The timetable of a load test: who connects when and which message goes when. No I/O.

Two models (see docs/loadtest.md):

* **closed** (no ``rate``): every connection sends its next message as soon as the
  previous one is answered, ``messages`` times (or until ``duration`` runs out).
  The server's speed sets the pace, so a slow server is offered less load.
* **open** (``rate`` messages/s in total): message ``k`` is due at ``k / rate`` seconds
  after the timetable starts, whatever the server does. A free connection takes the
  next due message; latency is also measured from the due time, so a stall shows up
  in the percentiles instead of silently lowering the load (coordinated omission).

A plan splits into :class:`PlanPart` objects, one per worker process, whose union is
exactly the whole plan, so merged results equal those of a single process.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from nbstream.redact import redact_url, redact_value

if TYPE_CHECKING:
    from nbstream.server import Server

Model = Literal["closed", "open"]
Payload = str | bytes | Callable[[int, int], str | bytes]
"""A ``str.format`` template with ``{i}`` (message number) and ``{connection}``, fixed
bytes (sent as binary frames), or a function ``(connection, i) -> str | bytes``."""


@dataclass(frozen=True)
class LoadPlan:
    """What to run. Build one with :meth:`create`; all fields are validated there."""

    url: str
    connections: int = 100
    messages: int = 10
    rate: float | None = None
    duration: float | None = None
    ramp_up: float = 0.0
    payload: Payload = "Test message {i}"
    message_type: str | None = "chat"
    timeout: float = 30.0
    processes: int = 1
    connect_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, target: str | Server, **fields: Any) -> LoadPlan:
        """A validated plan for ``target`` (a ``ws://`` URL or a running Server).

        Raises:
            ValueError: naming the argument that is out of range.
        """
        url = target if isinstance(target, str) else target.url
        plan = cls(url, **fields)
        plan._check()
        return plan

    def _check(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme not in ("ws", "wss"):
            raise ValueError(f"target must be a ws:// or wss:// URL, got {self.url!r}")
        if self.connections < 1:
            raise ValueError(f"connections must be at least 1, got {self.connections}")
        if self.messages < 1 and self.duration is None:
            raise ValueError(f"messages must be at least 1, got {self.messages}")
        if self.rate is not None and not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a positive number of messages/s, got {self.rate}")
        if self.duration is not None and not self.duration > 0:
            raise ValueError(f"duration must be positive seconds, got {self.duration}")
        if self.ramp_up < 0:
            raise ValueError(f"ramp_up must not be negative, got {self.ramp_up}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {self.timeout}")
        if not 1 <= self.processes <= self.connections:
            raise ValueError(
                f"processes must be between 1 and connections ({self.connections}), "
                f"got {self.processes}"
            )
        if isinstance(self.payload, str):
            try:
                self.text(0, 0)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"payload template {self.payload!r} fails ({exc!r}): use {{i}} and "
                    "{connection}, and double literal braces"
                ) from None
        if isinstance(self.payload, bytes) and self.message_type is not None:
            raise ValueError("bytes payloads go in raw binary frames: pass message_type=None")
        if self.rate is not None and self.planned == 0:
            raise ValueError("rate * duration is less than one message")

    @property
    def model(self) -> Model:
        """``"open"`` when a ``rate`` is set, else ``"closed"``."""
        return "closed" if self.rate is None else "open"

    @property
    def planned(self) -> int | None:
        """How many messages the plan sends, or None for a closed model bounded by time."""
        if self.rate is not None:
            if self.duration is not None:
                return round(self.rate * self.duration)
            return self.connections * self.messages
        return None if self.duration is not None else self.connections * self.messages

    def connect_delay(self, connection: int) -> float:
        """Seconds after the start at which ``connection`` begins its handshake."""
        return connection * self.ramp_up / self.connections

    def intended(self, slot: int) -> float:
        """Seconds after the timetable starts at which open-model message ``slot`` is due."""
        assert self.rate is not None
        return slot / self.rate

    def text(self, connection: int, i: int) -> str | bytes:
        """The payload of message ``i`` on ``connection``."""
        payload = self.payload
        if isinstance(payload, str):
            return payload.format(i=i, connection=connection) if "{" in payload else payload
        if isinstance(payload, bytes):
            return payload
        return payload(connection, i)

    def split(self, parts: int | None = None) -> list[PlanPart]:
        """Split into ``parts`` (default ``processes``) disjoint parts that cover the plan.

        Connection ``c`` goes to part ``c % parts``; so does open-model slot ``k``.
        """
        n = self.processes if parts is None else parts
        slots = self.planned if self.rate is not None else None
        return [
            PlanPart(self, index, range(index, self.connections, n),
                     range(index, slots, n) if slots is not None else range(0))
            for index in range(n)
        ]

    @property
    def shown_url(self) -> str:
        """The target URL as results, logs and progress bars show it (tokens redacted)."""
        return redact_url(self.url)

    def parameters(self) -> dict[str, Any]:
        """The plan as JSON-compatible values (callables and objects become their repr).

        Secrets are redacted (a ``?token=`` in the URL, ``Authorization`` and other
        credential headers in ``connect_options``): these values are shown and stored.
        """
        payload = self.payload
        fields = {
            "target": self.shown_url,
            "model": self.model,
            "connections": self.connections,
            "messages": self.messages,
            "rate": self.rate,
            "duration": self.duration,
            "ramp_up": self.ramp_up,
            "payload": payload if isinstance(payload, str) else repr(payload),
            "message_type": self.message_type,
            "timeout": self.timeout,
            "processes": self.processes,
            "planned": self.planned,
            "connect_options": dict(self.connect_options),
        }
        parameters: dict[str, Any] = redact_value(json.loads(json.dumps(fields, default=repr)))
        return parameters


@dataclass(frozen=True)
class PlanPart:
    """The share of a plan one worker runs: some connections and some open-model slots.

    Indices are global, so rows from every part merge without renumbering.
    """

    plan: LoadPlan
    index: int
    connections: range
    slots: range
    """Open-model message numbers this part sends (empty in the closed model)."""

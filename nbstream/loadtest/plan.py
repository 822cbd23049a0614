"""The timetable of a load test: who connects when and which message goes when. No I/O.

Two models (see docs/loadtest.md):

* **closed** (no ``rate``): every connection sends its next message as soon as the
  previous one is answered, ``messages`` times (or until ``duration`` runs out).
  The server's speed sets the pace, so a slow server is offered less load.
* **open** (``rate`` messages/s in total): message ``k`` is due at ``k / rate`` seconds
  after the timetable starts, whatever the server does. A free connection takes the
  next due message; latency is also measured from the due time, so a stall shows up
  in the percentiles instead of silently lowering the load (coordinated omission).

What each connection does is either the built-in flow (send the payload, wait for
the answer, repeat) or a **scenario**: ``async def user_flow(user)`` run once per
iteration (:mod:`nbstream.loadtest.scenario`); in the open model ``rate`` is then
iterations per second.

A plan splits into :class:`PlanPart` objects, one per worker process, whose union is
exactly the whole plan, so merged results equal those of a single process. A plan
pickles its functions by value (:mod:`nbstream.loadtest.shipping`), so that those of
a notebook cell reach worker processes and Dask workers.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from string import Formatter
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from nbstream import wire
from nbstream.redact import redact_url, redact_value

if TYPE_CHECKING:
    from nbstream.server import Server

Model = Literal["closed", "open"]
Payload = str | bytes | Callable[[int, int], Any]
"""A ``str.format`` template with ``{i}`` (message number) and ``{connection}``, fixed
bytes (sent as binary frames), or a function ``(connection, i) -> value`` (str or
bytes; with ``protocol="json"`` also a dict or list)."""
Scenario = Callable[[Any], Awaitable[None]]
"""``async def user_flow(user) -> None``: one iteration of one user
(an :class:`nbstream.loadtest.User`)."""


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
    protocol: wire.ProtocolSpec = "nbstream"
    type_key: wire.TypeKey | None = None
    scenario: Scenario | None = None
    """Run this user flow instead of the built-in one; ``messages`` then counts
    iterations per connection."""
    data: Sequence[Any] | None = None
    """Rows for ``user.data``, cycled."""
    transport: str = "auto"
    """"auto", "websockets" or "picows" (see nbstream.loadtest.transport.choose)."""

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
        if isinstance(self.payload, bytes) and self.envelope_type is not None:
            raise ValueError("bytes payloads go in raw binary frames: pass "
                             "protocol='raw' (or message_type=None)")
        wire.create(self.protocol, type_key=self.type_key)  # a known protocol
        if self.scenario is not None and not _is_async(self.scenario):
            raise TypeError(f"scenario must be an async function of one argument (async def "
                            f"user_flow(user): ...), got {self.scenario!r}")
        if self.data is not None and len(self.data) == 0:
            raise ValueError("data has no rows: pass None, or rows for user.data")
        if self.rate is not None and self.planned == 0:
            raise ValueError("rate * duration is less than one message")

    @property
    def envelope_type(self) -> str | None:
        """The envelope type the built-in flow sends (nbstream protocol), else None."""
        if isinstance(self.protocol, str) and self.protocol == "nbstream":
            return self.message_type
        return None

    def wire_protocol(self) -> wire.WireProtocol:
        """A protocol object for this plan's connections (``protocol``, ``type_key``)."""
        return wire.create(self.protocol, type_key=self.type_key)

    def row(self, connection: int, iteration: int) -> Any:
        """The ``data`` row for iteration ``iteration`` of ``connection`` (None: no data).

        Rows are dealt round-robin over the connections' iterations (closed model) or
        the timetable's (open model), the same in every process.
        """
        data = self.data
        if data is None:
            return None
        turn = iteration if self.rate is not None else iteration * self.connections + connection
        return data[turn % len(data)]

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with cloudpickle, so that functions of a notebook cell travel by value."""
        from nbstream.loadtest.shipping import dumps

        return (_load_plan, (dumps({f.name: getattr(self, f.name) for f in fields(self)}),))

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

    @property
    def is_constant(self) -> bool:
        """Every message of the built-in flow has the same payload."""
        payload = self.payload
        return isinstance(payload, bytes) or (isinstance(payload, str) and "{" not in payload)

    def texts(self) -> Callable[[int, int], Any]:
        """:meth:`text` as one function for the data path (the payload's kind is
        looked at once, not at every message)."""
        payload = self.payload
        counted = self._counted()
        if counted is not None:
            # "... {i} ...": an f-string costs 40% of str.format with keywords
            head, tail = counted
            return lambda connection, i: f"{head}{i}{tail}"
        if isinstance(payload, str) and "{" in payload:
            template = payload.format
            return lambda connection, i: template(i=i, connection=connection)
        if isinstance(payload, str | bytes):
            return lambda connection, i: payload
        return payload

    def text_frames(self) -> Callable[[int, int], wire.Encoded] | None:
        """``(connection, i) ->`` the text frame of :meth:`text`, formatted and framed in
        one step, for a protocol that :attr:`~nbstream.wire.WireProtocol.sends_str_as_text`
        (a Python call less per message); None unless the payload is a ``{i}`` template."""
        counted = self._counted()
        if counted is None:
            return None
        head, tail, encoded = *counted, wire.Encoded
        return lambda connection, i: encoded(f"{head}{i}{tail}".encode(), True)

    def _counted(self) -> tuple[str, str] | None:
        """A payload whose only field is ``{i}``, as the text (head, tail) around it."""
        payload = self.payload
        if not isinstance(payload, str) or "{" not in payload:
            return None
        pieces = list(Formatter().parse(payload))  # (literal, field, spec, conversion)
        if (pieces[0][1:] != ("i", "", None)
                or any(name is not None for _, name, _, _ in pieces[1:])):
            return None
        return pieces[0][0], "".join(literal for literal, *_ in pieces[1:])

    def text(self, connection: int, i: int) -> Any:
        """The payload of message ``i`` on ``connection`` (str or bytes; a payload
        function may also return a JSON value for ``protocol="json"``)."""
        return self.texts()(connection, i)

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
            "message_type": self.envelope_type,
            "protocol": self.protocol if isinstance(self.protocol, str) else repr(self.protocol),
            "scenario": _name(self.scenario),
            "data_rows": None if self.data is None else len(self.data),
            "timeout": self.timeout,
            "processes": self.processes,
            "planned": self.planned,
            "connect_options": dict(self.connect_options),
        }
        if self.scenario is not None:
            fields["iterations"] = fields.pop("messages")
        parameters: dict[str, Any] = redact_value(json.loads(json.dumps(fields, default=repr)))
        return parameters


def _is_async(function: Callable[..., Any]) -> bool:
    """An async function, a partial of one, or an object whose ``__call__`` is async."""
    if inspect.iscoroutinefunction(function):
        return True
    return not inspect.isroutine(function) and inspect.iscoroutinefunction(
        type(function).__call__)


def _name(function: Callable[..., Any] | None) -> str | None:
    if function is None:
        return None
    return str(getattr(function, "__name__", repr(function)))


def _load_plan(data: bytes) -> LoadPlan:
    import pickle

    return LoadPlan(**pickle.loads(data))


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

"""Every option of :func:`load_test`, :func:`aload_test` and :func:`start_load_test`,
defined once, checked where it enters.

:class:`LoadTestOptions` holds each keyword, its default and its check; keywords it
does not know but websockets' ``connect`` does (``additional_headers``,
``max_size``...) pass through to every connection; anything else is refused by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.datastructures import HeadersLike
from websockets.extensions import ClientExtensionFactory
from websockets.typing import LoggerLike

from nbstream import wire
from nbstream.loadtest.plan import LoadPlan, Payload, Scenario
from nbstream.loadtest.transports import TRANSPORTS, TransportName, choose
from nbstream.validation import count, kind, number, one_of, seconds, validate

if TYPE_CHECKING:
    from nbstream.loadtest.cluster import ClusterTarget
    from nbstream.loadtest.faults import FaultEntry
    from nbstream.server import Server

CONNECT_KEYWORDS = frozenset(inspect.signature(ws_connect.__init__).parameters) - {
    "self", "uri", "kwargs"}
"""websockets ``connect`` keywords a load test passes through to its connections."""

_PAYLOAD = kind(str, bytes, Callable, description=(  # type: ignore[arg-type]
    "a str template, bytes, or a function (connection, i) -> str | bytes"))
_PROTOCOL = kind(str, wire.WireProtocol, optional=True, description=(
    '"nbstream", "json", "text", "raw" or a nbstream.wire.WireProtocol'))
_SCENARIO = kind(Callable, optional=True, description=(  # type: ignore[arg-type]
    "an async function user_flow(user)"))
_DATA = kind(list, tuple, optional=True, description="a pandas DataFrame or a list of rows")


@dataclass(frozen=True)
class LoadTestOptions:
    """The keywords of :func:`nbstream.load_test` (see its docstring for each)."""

    connections: int = field(default=100, metadata=count(1))
    messages: int = field(default=10, metadata=count(1))
    rate: float | None = field(default=None, metadata=number(0, exclusive=True,
                                                                optional=True))
    duration: float | None = field(default=None, metadata=seconds(optional=True))
    ramp_up: float = field(default=0.0, metadata=seconds(zero=True))
    payload: Payload = field(default="Test message {i}", metadata=_PAYLOAD)
    message_type: str | None = field(default="chat", metadata=kind(
        str, description="an envelope type such as 'chat'", optional=True))
    timeout: float = field(default=30.0, metadata=seconds())
    processes: int | None = field(default=None, metadata=count(1, optional=True))
    cluster: ClusterTarget | None = None
    progress: bool = field(default=True, metadata=kind(bool, description="True or False"))
    protocol: str | wire.WireProtocol | None = field(default=None, metadata=_PROTOCOL)
    """None: ``"nbstream"``, or ``"raw"`` when ``message_type=None``."""
    type_key: wire.TypeKey | None = None
    scenario: Scenario | None = field(default=None, metadata=_SCENARIO)
    iterations: int | None = field(default=None, metadata=count(1, optional=True))
    data: Any = None
    """A DataFrame or a list of rows for ``user.data``."""
    transport: TransportName = field(default="auto", metadata=one_of(*TRANSPORTS))
    """The library driving the connections; "auto": picows when installed and able."""
    faults: Iterable[FaultEntry] | None = None
    connect_options: Mapping[str, Any] = field(default_factory=dict)
    """websockets ``connect`` keywords for every connection."""

    def __post_init__(self) -> None:
        if _is_frame(self.data):  # a DataFrame: its rows as dicts, picklable and cheap
            object.__setattr__(self, "data", self.data.to_dict("records"))
        validate(self, "load_test")
        if self.iterations is not None and self.scenario is None:
            raise ValueError("load_test(iterations=...) counts the iterations of a scenario: "
                             "pass scenario=..., or messages=... for the built-in flow")
        if self.data is not None and self.scenario is None:
            raise ValueError("load_test(data=...) gives rows to a scenario's user.data: pass "
                             "scenario=... too")
        if self.type_key is not None and not (isinstance(self.type_key, str)
                                              or callable(self.type_key)):
            raise TypeError(f"load_test(type_key={self.type_key!r}): must be a key (str) "
                            "or a function of the decoded value")
        if self.rate is not None and self.duration is not None \
                and self.rate * self.duration > 1e9:
            raise ValueError(f"load_test(rate={self.rate}, duration={self.duration}): "
                             "more than a billion messages; shorten the test")

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any]) -> LoadTestOptions:
        """Split ``load_test(**options)`` into options and websockets' own keywords.

        Raises:
            TypeError: naming keywords that neither knows.
        """
        known = {f.name for f in fields(cls)} - {"connect_options"}
        unknown = sorted(set(options) - known - CONNECT_KEYWORDS)
        if unknown:
            raise TypeError(
                f"load_test() got unknown option(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known))}, and websockets' connect keywords "
                f"{', '.join(sorted(CONNECT_KEYWORDS))}")
        passed = {k: v for k, v in options.items() if k in CONNECT_KEYWORDS}
        return cls(**{k: v for k, v in options.items() if k in known},
                   connect_options=passed)

    def plan(self, target: str | Server) -> LoadPlan:
        """The validated timetable for ``target`` (a ``ws://`` URL or a Server).

        Raises:
            ValueError: naming the argument that is out of range.
            TypeError: for a function that cannot be shipped to the workers of a run
                with ``processes`` > 1 or a ``cluster``.
        """
        protocol = self.protocol
        if protocol is None:
            protocol = "raw" if self.message_type is None else "nbstream"
        plan = LoadPlan.create(
            target, connections=self.connections,
            messages=self.messages if self.scenario is None else (self.iterations or 1),
            rate=self.rate, duration=self.duration, ramp_up=self.ramp_up,
            payload=self.payload, message_type=self.message_type, timeout=self.timeout,
            processes=1 if self.processes is None else self.processes,
            connect_options=self.connect_options, protocol=protocol,
            type_key=self.type_key, scenario=self.scenario,
            data=None if self.data is None else list(self.data), transport=self.transport)
        choose(self.transport, self.connect_options)  # transport="picows" without picows
        if plan.processes > 1 or self.cluster is not None:
            from nbstream.loadtest.shipping import check_shippable

            for name in ("scenario", "payload", "type_key", "protocol", "data"):
                check_shippable(name, getattr(plan, name))
        return plan


class LoadTestKwargs(TypedDict, total=False):
    """``**options`` of :func:`nbstream.load_test`, for type checkers."""

    connections: int
    messages: int
    rate: float | None
    duration: float | None
    ramp_up: float
    payload: Payload
    message_type: str | None
    timeout: float
    processes: int | None
    cluster: ClusterTarget | None
    progress: bool
    protocol: str | wire.WireProtocol | None
    type_key: wire.TypeKey | None
    scenario: Scenario | None
    iterations: int | None
    data: Any
    transport: TransportName
    faults: Iterable[FaultEntry] | None
    # websockets' connect keywords (CONNECT_KEYWORDS), passed to every connection
    origin: str | None
    extensions: Sequence[ClientExtensionFactory] | None
    subprotocols: Sequence[str] | None
    compression: str | None
    additional_headers: HeadersLike | None
    user_agent_header: str | None
    proxy: str | Literal[True] | None
    process_exception: Callable[[Exception], Exception | None]
    open_timeout: float | None
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float | None
    reconnect_delays: Callable[[], Generator[float]]
    max_size: int | tuple[int | None, int | None] | None
    max_queue: int | tuple[int | None, int | None] | None
    write_limit: int | tuple[int, int | None]
    logger: LoggerLike | None
    create_connection: type[ClientConnection] | None


def _is_frame(value: Any) -> bool:
    """A pandas DataFrame (checked without importing pandas)."""
    return type(value).__name__ == "DataFrame" and hasattr(value, "to_dict")

"""The fault vocabulary: names, parameters and defaults, checked before anything runs.

:data:`KINDS` lists every fault :meth:`nbstream.FaultProxy.add` knows, with its
layer (``tcp``: bytes, Toxiproxy's meanings; ``websocket``: whole messages), its
parameters and their defaults, and the stage that does it. :func:`make_fault`
turns ``add``'s arguments into a checked :class:`Fault`, or raises ValueError
naming what is wrong. docs/faults.md describes each fault.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from nbstream.faults import messages, tcp
from nbstream.faults.stage import Report, Stage, Tally
from nbstream.faults.units import Way

Direction = Literal["up", "down", "both"]
"""``up``: client to server; ``down``: server to client; ``both``."""
Layer = Literal["tcp", "websocket"]
REQUIRED: Any = object()
"""A parameter without a default."""

Check = Callable[[str, Any], Any]


def _number(low: float, *, above: bool = False) -> Check:
    def check(name: str, value: Any) -> Any:
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or value < low or (above and value == low)):
            bound = f"above {low:g}" if above else f"at least {low:g}"
            raise ValueError(f"{name} must be a number {bound}, got {value!r}")
        return float(value)
    return check


def _whole(low: int, *, optional: bool = False) -> Check:
    def check(name: str, value: Any) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            none = " or None" if optional else ""
            raise ValueError(f"{name} must be a whole number, at least {low}{none}, "
                             f"got {value!r}")
        return value
    return check


def _optional_ms(name: str, value: Any) -> Any:
    return None if value is None else _number(0)(name, value)


def _match(name: str, value: Any) -> Any:
    if value is None or isinstance(value, str) or callable(value):
        return value
    raise ValueError(f"{name} must be a message type such as 'end', a function "
                     f"(decoded message) -> bool, or None; got {value!r}")


_CHOOSE = {"index": None, "match": None, "times": None}
_CHECKS: dict[str, Check] = {
    "ms": _number(0), "jitter_ms": _number(0), "kbps": _number(0, above=True),
    "average_size": _whole(1), "size_variation": _whole(0), "delay_us": _number(0),
    "bytes": _whole(0), "index": _whole(0, optional=True), "times": _whole(1, optional=True),
    "match": _match,
}


@dataclass(frozen=True)
class Kind:
    """One fault of the vocabulary."""

    name: str
    layer: Layer
    stage: type[Stage[Any]]
    defaults: Mapping[str, Any]
    """Every parameter, with its default (or :data:`REQUIRED`)."""
    summary: str
    toxiproxy: str
    """The Toxiproxy toxic it follows (and its parameter names), or "" if none."""
    checks: Mapping[str, Check] = field(default_factory=dict)
    """Checks that differ from the shared ones, by parameter."""

    def check(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` completed with defaults and checked.

        Raises:
            ValueError: naming an unknown or missing parameter, or a wrong value.
        """
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            known = ", ".join(self.defaults) or "none"
            raise ValueError(f"{self.name} has no parameter {', '.join(unknown)}; "
                             f"its parameters: {known} (and direction, probability)")
        checked = {}
        for name, default in self.defaults.items():
            value = params.get(name, default)
            if value is REQUIRED:
                raise ValueError(f"{self.name} needs {name}=...")
            checked[name] = self.checks.get(name, _CHECKS[name])(name, value)
        return checked


KINDS: dict[str, Kind] = {kind.name: kind for kind in [
    Kind("latency", "tcp", tcp.Latency, {"ms": REQUIRED, "jitter_ms": 0.0},
         "holds data ms milliseconds, +/- jitter_ms", "latency (latency, jitter)"),
    Kind("bandwidth", "tcp", tcp.Bandwidth, {"kbps": REQUIRED},
         "lets kbps kilobytes per second through", "bandwidth (rate, KB/s)"),
    Kind("slicer", "tcp", tcp.Slicer,
         {"average_size": 64, "size_variation": 0, "delay_us": 0.0},
         "splits writes into small pieces", "slicer (average_size, size_variation, delay)"),
    Kind("timeout", "tcp", tcp.Timeout, {"ms": 0.0},
         "stops all data; closes after ms (0: never, half-open)", "timeout (timeout)"),
    Kind("reset_peer", "tcp", tcp.ResetPeer, {"ms": 0.0},
         "resets the connection (RST) ms after the next data", "reset_peer (timeout)"),
    Kind("limit_data", "tcp", tcp.LimitData, {"bytes": REQUIRED},
         "closes the connection after bytes bytes", "limit_data (bytes)"),
    Kind("slow_close", "tcp", tcp.SlowClose, {"ms": REQUIRED},
         "delays the close by ms", "slow_close (delay)"),
    Kind("drop", "websocket", messages.Drop, _CHOOSE, "the message never arrives", ""),
    Kind("duplicate", "websocket", messages.Duplicate, _CHOOSE, "the message arrives twice",
         ""),
    Kind("delay", "websocket", messages.Delay, {"ms": REQUIRED, **_CHOOSE},
         "holds one message ms; what follows waits behind it", ""),
    Kind("reorder", "websocket", messages.Reorder, {"ms": 1000.0, **_CHOOSE},
         "holds one message until the next one passed (at most ms)", ""),
    Kind("corrupt", "websocket", messages.Corrupt, {"bytes": 1, **_CHOOSE},
         "flips bytes of the payload; the receiver must fail with 1007", "",
         checks={"bytes": _whole(1)}),
    Kind("stall", "websocket", messages.Stall, {"ms": None},
         "nothing passes this way for ms (None: until removed)", "",
         checks={"ms": _optional_ms}),
]}


@dataclass(frozen=True)
class Fault:
    """One fault as added to a proxy: what, which way, how likely, with which values."""

    id: str
    kind: Kind
    direction: Direction
    probability: float
    """TCP-level faults: the chance each connection gets it (Toxiproxy's toxicity);
    WebSocket-level faults: the chance each chosen message gets it."""
    params: Mapping[str, Any]
    tally: Tally = field(default_factory=Tally, compare=False)
    """Shared by its stages, so that ``times`` counts across connections."""

    @property
    def ways(self) -> tuple[Way, ...]:
        """The directions it acts on."""
        return ("up", "down") if self.direction == "both" else (self.direction,)

    def stage_params(self) -> dict[str, Any]:
        """The values its stages take (message-choosing ones also take the probability)."""
        params = dict(self.params)
        if "index" in self.kind.defaults:
            params["probability"] = self.probability
            params["tally"] = self.tally
        return params

    def stage(self, rng: random.Random, now: float, report: Report) -> Stage[Any]:
        """A new stage doing this fault on one direction of one connection."""
        return self.kind.stage(self.stage_params(), rng, now, report)

    def with_params(self, **changes: Any) -> Fault:
        """The same fault with some parameters changed (checked).

        Raises:
            ValueError: as :func:`make_fault` does.
        """
        probability = _probability(changes.pop("probability", self.probability))
        return Fault(self.id, self.kind, self.direction, probability,
                     self.kind.check({**self.params, **changes}), self.tally)

    def __str__(self) -> str:
        shown = {k: v for k, v in self.params.items() if v is not None}
        values = " ".join(f"{k}={getattr(v, '__name__', v)!s}" for k, v in shown.items())
        chance = f" probability={self.probability:g}" if self.probability < 1 else ""
        return f"{self.kind.name} {self.direction} {values}{chance}".replace("  ", " ").strip()


def _probability(value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not 0.0 <= value <= 1.0):
        raise ValueError(f"probability must be a number from 0 to 1, got {value!r}")
    return float(value)


def make_fault(id: str, name: str, direction: str, probability: float,
               params: Mapping[str, Any]) -> Fault:
    """A checked :class:`Fault`.

    Raises:
        ValueError: for an unknown fault (the message lists the known ones), a wrong
            direction or probability, or a parameter that is unknown, missing or wrong.
    """
    kind = KINDS.get(name)
    if kind is None:
        raise ValueError(f"no fault named {name!r}; known: {', '.join(KINDS)}")
    if direction not in ("up", "down", "both"):
        raise ValueError(f"direction must be 'up' (client to server), 'down' (server to "
                         f"client) or 'both', got {direction!r}")
    return Fault(id, kind, direction, _probability(probability),  # type: ignore[arg-type]
                 kind.check(params))

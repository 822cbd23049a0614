"""Faults on a schedule during a load test, and what they did to its figures.

``load_test(url, ..., faults=[(2, 3, "latency", {"ms": 100}), ...])`` runs the load
through a fault proxy (:func:`nbstream.proxy`) that adds each fault ``start_s``
seconds into the test and removes it ``duration_s`` later. The windows, as they
really happened, go into the result's parameters (``"faults"``); from them
:func:`per_second` marks ``.timeseries``, :func:`shade` marks ``plot()`` and
:func:`inside_outside` adds the figures inside and outside the windows to
``summary()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nbstream.faults import FaultHandle, FaultProxy
from nbstream.faults.vocabulary import make_fault

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from nbstream.loadtest.recorder import PartialResult

FaultEntry = tuple[float, float, str] | tuple[float, float, str, Mapping[str, Any]]
"""``(start_s, duration_s, fault)`` or ``(start_s, duration_s, fault, params)``; params
may hold ``direction`` and ``probability`` as :meth:`nbstream.FaultProxy.add` takes them."""


@dataclass(frozen=True)
class ScheduledFault:
    """One checked entry of the schedule."""

    start: float
    duration: float
    fault: str
    params: Mapping[str, Any]


def check_schedule(faults: Iterable[Sequence[Any]]) -> list[ScheduledFault]:
    """The schedule, checked before anything starts.

    Raises:
        ValueError: naming the entry and what is wrong with it.
    """
    checked = []
    for number, entry in enumerate(faults):
        if not isinstance(entry, tuple | list) or len(entry) not in (3, 4):
            raise ValueError(f"faults[{number}] must be (start_s, duration_s, fault) or "
                             f"(start_s, duration_s, fault, params), got {entry!r}")
        start, duration, name, *rest = entry
        params = dict(rest[0]) if rest else {}
        for what, value in (("start_s", start), ("duration_s", duration)):
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"faults[{number}]: {what} must be seconds (>= 0), "
                                 f"got {value!r}")
        if duration == 0:
            raise ValueError(f"faults[{number}]: duration_s must be more than 0")
        options = {k: params.pop(k) for k in ("direction", "probability") if k in params}
        try:
            make_fault("check", name, options.get("direction", "down"),
                       options.get("probability", 1.0), params)
        except ValueError as exc:
            raise ValueError(f"faults[{number}]: {exc}") from None
        checked.append(ScheduledFault(float(start), float(duration), name,
                                      {**params, **options}))
    return checked


class FaultRun:
    """A load test's fault proxy and schedule; the load goes to :attr:`url`.

    The proxy is bound at once (so the plan knows its URL) and serves once
    :meth:`applied` is entered, on the loop the test runs on.
    """

    def __init__(self, target: str, schedule: list[ScheduledFault],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.target = target
        self.schedule = schedule
        self.proxy = FaultProxy(target, loop=loop)
        self._applied: list[tuple[ScheduledFault, float, float | None]] = []

    @property
    def url(self) -> str:
        """Where the load connects: the proxy."""
        return self.proxy.url

    @contextlib.asynccontextmanager
    async def applied(self) -> AsyncIterator[None]:
        """Serve the proxy and run the schedule while the block runs; stop both after."""
        await self.proxy.astart()
        task = asyncio.create_task(self._run_schedule(time.time()))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.proxy.astop()

    async def _run_schedule(self, started: float) -> None:
        moments = sorted([(item.start, True, n) for n, item in enumerate(self.schedule)]
                         + [(item.start + item.duration, False, n)
                            for n, item in enumerate(self.schedule)])
        handles: dict[int, tuple[FaultHandle, float]] = {}
        try:
            for at, begins, n in moments:
                await asyncio.sleep(max(0.0, started + at - time.time()))
                item = self.schedule[n]
                if begins:
                    params = dict(item.params)
                    handles[n] = (self.proxy.add(item.fault, **params), time.time())
                else:
                    handle, since = handles.pop(n)
                    handle.remove()
                    self._applied.append((item, since, time.time()))
        finally:  # the load finished first: close the windows still open
            for n, (handle, since) in handles.items():
                handle.remove()
                self._applied.append((self.schedule[n], since, time.time()))

    def parameters(self, parts: Sequence[PartialResult]) -> dict[str, Any]:
        """What goes into the result's parameters: the real target and the windows,
        in seconds from the test's start (the clock of its ``*_at`` columns)."""
        started = min(part.started_at for part in parts)
        windows = [{"start": since - started, "end": until - started, "fault": item.fault,
                    "params": item.params}
                   for item, since, until in sorted(self._applied, key=lambda a: a[1])
                   if until is not None]
        return {"target": self.target, "proxy": self.url,
                "faults": json.loads(json.dumps(windows, default=repr))}


def windows_of(parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fault windows a result's parameters hold (none for a test without faults)."""
    windows: list[dict[str, Any]] = parameters.get("faults") or []
    return windows


def per_second(windows: list[dict[str, Any]], seconds: int) -> list[str]:
    """For each one-second bucket, the faults in force during any of it ("" for none)."""
    marks = []
    for second in range(seconds):
        names = [w["fault"] for w in windows if w["start"] < second + 1 and w["end"] > second]
        marks.append("+".join(dict.fromkeys(names)))
    return marks


SHADES = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
"""Colours of the fault windows, one per fault name in order of appearance."""


def shade(axes: Iterable[Axes], windows: list[dict[str, Any]]) -> None:
    """Shade each fault window on time axes, a colour per fault, labelled once."""
    colours = {name: SHADES[i % len(SHADES)]
               for i, name in enumerate(dict.fromkeys(w["fault"] for w in windows))}
    for ax in axes:
        labelled: set[str] = set()
        for window in windows:
            name = window["fault"]
            ax.axvspan(window["start"], window["end"], color=colours[name], alpha=0.15, lw=0,
                       label=f"fault: {name}" if name not in labelled else None)
            labelled.add(name)


def inside_outside(messages: pd.DataFrame,
                   windows: list[dict[str, Any]]) -> list[tuple[str, float, str]]:
    """Summary rows for messages sent inside a fault window and outside all of them:
    requests, errors, throughput (completed per second of that time), p50 and p99."""
    if not windows:
        return []
    sent = messages["sent_at"].fillna(messages["done_at"]).to_numpy(dtype=float)
    inside = np.zeros(len(messages), dtype=bool)
    for window in windows:
        inside |= (sent >= window["start"]) & (sent < window["end"])
    span_start = float(np.nanmin(sent)) if len(sent) else 0.0
    span_end = float(messages["done_at"].max()) if len(messages) else 0.0
    in_seconds = sum(max(0.0, min(w["end"], span_end) - max(w["start"], span_start))
                     for w in windows)
    out_seconds = max(0.0, span_end - span_start - in_seconds)
    rows: list[tuple[str, float, str]] = [("fault_windows", len(windows), "count"),
                                          ("fault_seconds", in_seconds, "s")]
    for name, chosen, seconds in (("inside_faults", inside, in_seconds),
                                  ("outside_faults", ~inside, out_seconds)):
        part = messages[chosen]
        ok = part[part["error"].isna()]["latency"].dropna().to_numpy(dtype=float)
        rows += [
            (f"{name}.requests", len(part), "count"),
            (f"{name}.errors", int(part["error"].notna().sum()), "count"),
            (f"{name}.throughput", len(ok) / seconds if seconds > 0 else math.nan, "msg/s"),
            (f"{name}.latency_p50", float(np.quantile(ok, 0.5)) if len(ok) else math.nan, "s"),
            (f"{name}.latency_p99", float(np.quantile(ok, 0.99)) if len(ok) else math.nan, "s"),
        ]
    return rows

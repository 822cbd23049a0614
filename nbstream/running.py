"""What this process started, so that :func:`nbstream.stop_all` can stop all of it.

Servers, clients, load tests and fault proxies register themselves when they start,
with the kind of thing they are and the function that stops them. Only weak
references are kept: forgetting an object here never keeps it alive.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("load test", "client", "proxy", "server")
"""What :func:`stop_all` stops, in this order: load tests before the clients they use,
proxies before the servers behind them."""

PLURAL = {"load test": "load tests", "client": "clients", "proxy": "proxies",
          "server": "servers"}

Stop = Callable[[Any], str | None]
"""Stops one object; returns what it did ("stopped in 0.1 s: ...") or None when the
object had already stopped and there was nothing to do."""

_running: dict[str, weakref.WeakKeyDictionary[Any, Stop]] = {
    kind: weakref.WeakKeyDictionary() for kind in KINDS
}


def track(obj: Any, kind: str, stop: Stop) -> None:
    """Register ``obj`` (a ``kind`` from :data:`KINDS`) for :func:`stop_all`.

    ``stop`` must not hold ``obj`` (pass an unbound method, e.g. ``Server._stop_for_all``).
    """
    _running[kind][obj] = stop


@dataclass
class StopAllReport:
    """What :func:`stop_all` stopped, one line per object, grouped by kind."""

    stopped: dict[str, list[str]] = field(default_factory=dict)

    def __str__(self) -> str:
        if not any(self.stopped.values()):
            return "nothing was running: every server, client, proxy and load test had stopped"
        counts = [f"{len(done)} {kind if len(done) == 1 else PLURAL[kind]}"
                  for kind, done in self.stopped.items() if done]
        listed = ", ".join(counts[:-1]) + " and " + counts[-1] if len(counts) > 1 else counts[0]
        lines = [f"stopped {listed}:"]
        lines.extend(f"- {line}" for done in self.stopped.values() for line in done)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def stop_all() -> StopAllReport:
    """Stop every server, client, proxy and load test this process started.

    Safe to call at any time and twice; returns what it stopped (printed in a
    notebook), and says so when nothing was left running.
    """
    report = StopAllReport()
    for kind in KINDS:
        done: list[str] = []
        for obj, stop in list(_running[kind].items()):
            line = stop(obj)
            if line is not None:
                done.append(line)
            _running[kind].pop(obj, None)
        report.stopped[kind] = done
    return report

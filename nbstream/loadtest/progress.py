"""Live figures of a running load test, and the progress bar fed from them.

Workers report :class:`~nbstream.loadtest.recorder.Tick` objects about ten times a
second; :class:`ProgressTracker` folds the ticks of every worker into one
:class:`LoadProgress` snapshot. Views (the tqdm bar here, the notebook's live chart)
subscribe to snapshots through ``LoadTest.subscribe`` and never touch the data path.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nbstream.loadtest.recorder import Tick

WINDOW = 1.0
"""Seconds over which ``throughput``, ``p50`` and ``p99`` are computed."""


@dataclass(frozen=True, slots=True)
class LoadProgress:
    """A snapshot of a running load test (from ``LoadTest.progress()`` or a subscription)."""

    elapsed: float
    """Seconds since the start."""
    sent: int
    completed: int
    """Messages answered successfully so far."""
    errors: int
    """Messages that ended in an error so far (NOT_SENT ones included)."""
    in_flight: int
    connections_open: int
    throughput: float
    """Successful messages per second over the last second."""
    p50: float | None
    """Median latency (seconds) of the messages completed in the last second."""
    p99: float | None
    done: bool
    planned: int | None
    """Messages the plan sends, or None for a closed model bounded by ``duration``."""


_Chunk = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]
"""One tick's successes: completion times, latencies, and how many each stands for."""


def weighted_percentiles(values: npt.NDArray[np.float64], weights: npt.NDArray[np.float64],
                         percents: tuple[float, ...]) -> list[float]:
    """The smallest value at or above each percent of the total weight (the inverted
    CDF: always a value that occurred). numpy 2 has this as ``percentile(weights=)``;
    nbstream still runs on numpy 1."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    positions = np.searchsorted(cumulative, [p / 100 * cumulative[-1] for p in percents])
    return [float(values[order[min(i, len(order) - 1)]]) for i in positions]


class ProgressTracker:
    """Folds the ticks of one or more workers into :class:`LoadProgress` snapshots.

    Not thread-safe: update and read it from one thread (or under one lock).
    """

    def __init__(self, planned: int | None) -> None:
        self.planned = planned
        self._latest: dict[int, Tick] = {}
        self._recent: dict[int, deque[_Chunk]] = {}

    def update(self, source: int, tick: Tick) -> None:
        """Take the latest tick of worker ``source``."""
        self._latest[source] = tick
        recent = self._recent.setdefault(source, deque())
        if tick.done_at:
            recent.append((np.array(tick.done_at), np.array(tick.latencies), tick.weight))
        horizon = tick.at - 2 * WINDOW  # keep what the next snapshots may still need
        while recent and recent[0][0].max() <= horizon:
            recent.popleft()

    def snapshot(self, done: bool = False) -> LoadProgress:
        """The current figures. The last-second window ends at the oldest worker's tick,
        so that a worker whose tick is late does not lower the throughput."""
        ticks = self._latest.values()
        if not ticks:
            return LoadProgress(0.0, 0, 0, 0, 0, 0, 0.0, None, None, done, self.planned)
        end = min(t.at for t in ticks)
        chunks = [chunk for recent in self._recent.values() for chunk in recent]
        p50 = p99 = None
        count = 0.0
        if chunks:
            done_at = np.concatenate([c[0] for c in chunks])
            latencies = np.concatenate([c[1] for c in chunks])
            weights = np.concatenate([np.full(len(c[0]), c[2]) for c in chunks])
            inside = (done_at > end - WINDOW) & (done_at <= end)
            window, weights = latencies[inside], weights[inside]
            count = float(weights.sum())
            if len(window):
                p50, p99 = weighted_percentiles(window, weights, (50, 99))
        return LoadProgress(
            elapsed=max(t.at for t in ticks),
            sent=sum(t.sent for t in ticks),
            completed=sum(t.completed for t in ticks),
            errors=sum(t.errors for t in ticks),
            in_flight=sum(t.in_flight for t in ticks),
            connections_open=sum(t.connections_open for t in ticks),
            throughput=count / min(WINDOW, end) if end > 0 else 0.0,
            p50=p50,
            p99=p99,
            done=done,
            planned=self.planned,
        )


class ProgressBar:
    """A tqdm.auto bar (a widget in a notebook, text in a terminal) fed by snapshots.

    Subscribe it: ``test.subscribe(ProgressBar(planned))``; it closes itself on the
    final snapshot.
    """

    def __init__(self, planned: int | None, description: str = "load test") -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=planned, desc=description, unit="msg", dynamic_ncols=True)

    def __call__(self, progress: LoadProgress) -> None:
        bar = self._bar
        bar.n = progress.completed + progress.errors
        postfix = {"msg/s": f"{progress.throughput:,.0f}", "errors": progress.errors,
                   "open": progress.connections_open}
        if progress.p99 is not None:
            postfix["p99"] = f"{progress.p99 * 1e3:.1f} ms"
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()
        if progress.done:
            bar.close()

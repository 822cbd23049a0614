"""Drives one :class:`~nbstream.loadtest.plan.PlanPart` over real WebSocket connections.

One coroutine per connection, each with a :class:`~nbstream.loadtest.client.LoadClient`
(framing by the protocol seam, replies matched by ``request_step``) that reads its
replies inline. A connection has at most one request in flight. No per-message
timers: one watchdog task aborts connections whose request is overdue.

What a connection does in each turn is either the built-in flow (send message ``i``
of the payload, wait for its answer) or one iteration of a scenario
(:mod:`nbstream.loadtest.scenario`); turns come as fast as they finish (closed model)
or on the plan's timetable (open model).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from nbstream.events import EventStream
from nbstream.loadtest.client import LoadClient
from nbstream.loadtest.errors import LocalError
from nbstream.loadtest.plan import PlanPart
from nbstream.loadtest.recorder import Recorder
from nbstream.loadtest.scenario import ScenarioRun
from nbstream.loadtest.transport import ConnectFailed
from nbstream.loadtest.transports import choose, open_transport
from nbstream.protocol import Message, StreamClosed, StreamError
from nbstream.wire import Encoded

WATCHDOG_INTERVAL = 0.1
"""Seconds between checks for overdue requests (how late a TIMEOUT may be declared)."""


class Runner:
    """Runs one plan part: connects, sends on the plan's schedule, records everything.

    Create it, ``await run()`` (returns once every connection is closed and every
    planned message has a row), and read the rows from the recorder. ``cancel()``
    stops early; messages in flight become CANCELLED rows.
    """

    def __init__(self, part: PlanPart, recorder: Recorder,
                 events: EventStream | None = None) -> None:
        self.part = part
        self.plan = plan = part.plan
        self.recorder = recorder
        self.events = events if events is not None else EventStream()
        self.protocol = plan.wire_protocol()
        self.library = choose(plan.transport, plan.connect_options)  # type: ignore[arg-type]
        """The library driving this worker's connections."""
        recorder.transport = self.library
        self.scenario = (ScenarioRun(plan, recorder, plan.scenario)
                         if plan.scenario is not None else None)
        self.cancelled = False
        self._clients: list[LoadClient] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._slots: deque[int] = deque(part.slots)
        self._timetable_ns = 0
        self._message = self._messages()

    async def run(self) -> None:
        """Run the part to the end (or until :meth:`cancel`); never raises for the network."""
        plan, recorder = self.plan, self.recorder
        watchdog = asyncio.create_task(self._watch())
        try:
            if plan.model == "closed":
                await self._all(self._closed(i) for i in self.part.connections)
            else:
                await self._all(self._connect(i) for i in self.part.connections)
                self._timetable_ns = max(recorder.clock(),
                                         recorder.t0_ns + round(plan.ramp_up * 1e9))
                await self._all(self._open(c) for c in list(self._clients) if c.alive)
        finally:
            watchdog.cancel()
            # Connections whose task was cancelled before it started are still open.
            await asyncio.gather(*(c.aclose() for c in self._clients))
            self._finish_rows()

    def cancel(self) -> None:
        """Stop now: close every connection; in-flight messages become CANCELLED."""
        self.cancelled = True
        for task in self._tasks:
            task.cancel()

    async def _all(self, coros: Iterable[Coroutine[Any, Any, Any]]) -> None:
        self._tasks = [asyncio.create_task(c) for c in coros]
        if self.cancelled:
            self.cancel()
        for outcome in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(outcome, Exception):
                raise outcome  # a bug, not a network error: those are rows

    # -- connecting ---------------------------------------------------------------------

    async def _connect(self, index: int) -> LoadClient | None:
        plan, recorder = self.plan, self.recorder
        record = recorder.connection(index)
        delay = recorder.t0_ns + round(plan.connect_delay(index) * 1e9) - recorder.clock()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        record.started_ns = recorder.clock()
        try:
            transport = await open_transport(plan.url, plan.timeout, plan.connect_options,
                                             self.library)
        except ConnectFailed as exc:
            record.closed_ns = recorder.clock()
            record.error, record.close_reason = exc.error, exc.reason
            return None
        record.connected_ns = recorder.clock()
        recorder.connections_open += 1
        if self.events:
            self.events.emit("open", "client", str(index))
        client = LoadClient(index, plan.url, transport, self.protocol, recorder, record,
                            self.events, plan.timeout)
        self._clients.append(client)
        return client

    async def _watch(self) -> None:
        """Abort connections whose request is overdue; it then fails with TIMEOUT."""
        clock = self.recorder.clock
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL)
            now = clock()
            for client in self._clients:
                if client.deadline_ns and now > client.deadline_ns and not client.timed_out:
                    client.abort()

    # -- the two models -----------------------------------------------------------------

    async def _closed(self, index: int) -> None:
        """Connect, then take each turn as soon as the previous one is done."""
        plan, recorder = self.plan, self.recorder
        clock = recorder.clock
        count = plan.messages if plan.duration is None else None
        end_ns = (recorder.t0_ns + round((plan.ramp_up + plan.duration) * 1e9)
                  if plan.duration is not None else None)
        i = 0
        client = await self._connect(index)
        try:
            if client is None:
                return
            scenario, message, timeout = self.scenario, self._message, plan.timeout
            user = scenario.user(client) if scenario is not None else None
            flow = scenario.flow if scenario is not None else None
            events, quick = self.events, client.first_frame_ends
            read_frame, closed_error = client.read_frame, client.closed_error
            # One clock reading per turn serves both the duration and the iteration's start
            timed = end_ns is not None or scenario is not None
            while (count is None or i < count) and client.alive:
                now = clock() if timed else 0
                if end_ns is not None and now >= end_ns:
                    break
                if scenario is not None:
                    assert user is not None and flow is not None
                    record = scenario.start(user, i, 0, now)
                    try:
                        await flow(user)
                    except Exception as exc:
                        scenario.failed(user, exc)
                    else:
                        record.done_ns = clock()
                elif quick and not events.listened:
                    # The built-in flow: exchange's steps without its coroutine (5% of a
                    # message). The first frame back answers, so message() is a frame.
                    row = client.start(message(index, i), i, timeout)  # type: ignore[arg-type]
                    try:
                        client.answered(row, await read_frame())
                    except closed_error as exc:
                        client.lost(row, exc, timeout)  # recorded; no longer alive
                else:
                    try:
                        await client.exchange(message(index, i), None, timeout, i, keep=False)
                    except (StreamError, StreamClosed, TimeoutError):
                        pass  # recorded; a connection that cannot go on is no longer alive
                i += 1
        finally:
            if count is not None and not self.cancelled:
                for seq in range(i, count):
                    self._not_sent(index, seq, 0)
            if client is not None:
                await client.aclose()

    async def _open(self, client: LoadClient) -> None:
        """Take the next due slot, wait for its time, take the turn."""
        clock, slots = self.recorder.clock, self._slots
        scenario, message, timeout = self.scenario, self._message, self.plan.timeout
        # In-band pings are messages: read them while waiting. WebSocket pings are
        # answered by the transport whether anyone reads or not.
        wait = client.idle if self.protocol.in_band_heartbeat else asyncio.sleep
        user = scenario.user(client) if scenario is not None else None
        flow = scenario.flow if scenario is not None else None
        try:
            while slots and client.alive:
                slot = slots.popleft()
                due = self._due_ns(slot)
                delay = due - clock()
                if delay > 0:
                    await wait(delay / 1e9)
                if not client.alive:
                    slots.appendleft(slot)  # another connection takes it
                    break
                if scenario is not None:
                    assert user is not None and flow is not None
                    record = scenario.start(user, slot, due, clock())
                    try:
                        await flow(user)
                    except Exception as exc:
                        scenario.failed(user, exc)
                    else:
                        record.done_ns = clock()
                    continue
                try:
                    await client.exchange(message(client.index, slot), None, timeout, slot,
                                          intended_ns=due, keep=False)
                except (StreamError, StreamClosed, TimeoutError):
                    pass  # recorded; a connection that cannot go on is no longer alive
        finally:
            await client.aclose()

    def _messages(self) -> Callable[[int, int], Message | Encoded]:
        """``(connection, seq) ->`` message ``seq`` of the built-in flow on ``connection``
        (or just its frame, where replies name no request): one function, chosen once
        for the data path."""
        plan, protocol = self.plan, self.protocol
        if not protocol.ends_replies and plan.is_constant:
            constant = protocol.frame(plan.text(0, 0))  # every turn may send the same frame
            return lambda connection, seq: constant
        text, envelope_type = plan.texts(), plan.envelope_type
        text_frames = plan.text_frames() if protocol.sends_str_as_text else None
        if text_frames is not None:
            return text_frames
        if envelope_type is not None:
            return lambda connection, seq: Message(envelope_type,
                                                   {"text": text(connection, seq)})
        frame = protocol.frame
        return lambda connection, seq: frame(text(connection, seq))

    def _due_ns(self, slot: int) -> int:
        return self._timetable_ns + round(self.plan.intended(slot) * 1e9)

    def _not_sent(self, connection: int, seq: int, due_ns: int) -> None:
        if self.scenario is not None:
            self.scenario.not_run(connection, seq, due_ns)
        else:
            self.recorder.not_sent(connection, seq, due_ns)

    def _finish_rows(self) -> None:
        """Give every turn a row: in flight -> CANCELLED, never taken -> NOT_SENT."""
        now = self.recorder.clock()
        if self.scenario is not None:
            self.scenario.settle_cancelled(now)
        for client in self._clients:
            if client.current is not None:
                self.recorder.finish(client.current, now, LocalError.CANCELLED, answered=False)
                client.current = None
        if not self.cancelled:
            for slot in self._slots:
                self._not_sent(-1, slot, self._due_ns(slot))
            self._slots.clear()


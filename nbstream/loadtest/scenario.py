"""Scripted load tests: ``load_test(url, scenario=user_flow)``.

``async def user_flow(user)`` is one iteration of one virtual user. Each connection
is a user that runs the flow ``iterations`` times (closed model) or takes iterations
off the timetable (open model, ``rate`` iterations per second), always on its own
connection (``user.client``). What the flow times becomes rows of
``LoadResult.messages`` named by their ``step``: ``user.request(..., name=)`` (a send
until its reply), ``async with user.step(name)`` (any block) and ``user.record(name,
seconds)`` (a figure measured some other way). ``user.check(name, ok)`` counts checks
as k6 does: a failed check never stops the user.

Errors are rows, never exceptions: an exception that escapes the flow ends that
iteration and becomes an error row named after the step it escaped (or the flow),
with its code (a server's error code, TIMEOUT, CLOSED_<code>, or the exception's
class name). In the open model a row's ``intended_at`` is its start shifted back by
how late its iteration started, so ``latency_corrected`` includes that wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any

from nbstream.loadtest.errors import LocalError, closed_error
from nbstream.loadtest.recorder import IterationRecord, Recorder
from nbstream.protocol import Message, StreamClosed, StreamError
from nbstream.protocol.replies import Until

if TYPE_CHECKING:
    from nbstream.loadtest.client import LoadClient
    from nbstream.loadtest.plan import LoadPlan, Scenario

logger = logging.getLogger(__name__)

REQUEST_STEP = "request"
"""The step name of a ``user.request`` given no ``name``."""


def error_code(exc: BaseException) -> str:
    """The row code of an exception that ended a step or an iteration."""
    if isinstance(exc, asyncio.CancelledError):
        return LocalError.CANCELLED
    if isinstance(exc, StreamError):
        return str(exc.code)
    if isinstance(exc, StreamClosed):
        return str(exc.error.code) if exc.error is not None else closed_error(exc.code)
    if isinstance(exc, TimeoutError):
        return LocalError.TIMEOUT
    return type(exc).__name__


class ScenarioRun:
    """The scenario of one runner: the flow, and what its users share."""

    def __init__(self, plan: LoadPlan, recorder: Recorder, flow: Scenario) -> None:
        self.plan = plan
        self.recorder = recorder
        self.flow = flow
        self.name = str(getattr(flow, "__name__", type(flow).__name__))
        self.timeout = plan.timeout
        self._users: dict[int, User] = {}
        self._clock = recorder.clock
        self._iterations = recorder.iterations
        self._data = plan.data is not None
        self._logged: set[str] = set()

    def user(self, client: LoadClient) -> User:
        """The virtual user of ``client``'s connection, kept for all its iterations."""
        user = self._users.get(client.index)
        if user is None:
            user = self._users[client.index] = User(self, client)
        return user

    def start(self, user: User, iteration: int, due_ns: int, now: int) -> IterationRecord:
        """Start ``user``'s iteration ``iteration`` at clock reading ``now``; then await
        ``flow(user)``, hand an exception that escapes it to :meth:`failed`, else set the
        record's ``done_ns``.

        The runner's two loops do this inline (``Runner._closed``, ``Runner._open``): a
        coroutine of ours around the flow would cost every iteration. ``due_ns`` is when
        the timetable wanted it started (0: now, closed model). An iteration cancelled
        midway is settled by :meth:`settle_cancelled`.
        """
        intended = due_ns or now
        # Recorder.iteration, inline: a call per iteration is a share of the scenario's cost
        record = IterationRecord(user.index, iteration, intended, now)
        self._iterations.append(record)
        user.iteration = iteration
        if self._data:
            user.data = self.plan.row(user.index, iteration)
        user._record = record
        user._lag_ns = now - intended
        user._recorded = user.client.recorded = None
        return record

    def failed(self, user: User, exc: Exception) -> None:
        """``exc`` escaped the flow: record the iteration's end and an error row
        (unless a step or request already recorded that exception)."""
        record = user._record
        assert record is not None
        now = self.recorder.clock()
        record.done_ns = now
        record.error = code = error_code(exc)
        if exc is not user._recorded and exc is not user.client.recorded:
            self.recorder.interval(user.index, record.iteration, self.name,
                                   record.intended_ns, record.started_ns, now, code)
        self._log(code, exc)

    def settle_cancelled(self, now: int) -> None:
        """End every iteration still running (the test was cancelled) as CANCELLED."""
        for user in self._users.values():
            record = user._record
            if record is not None and not record.done_ns:
                record.done_ns, record.error = now, LocalError.CANCELLED

    def not_run(self, connection: int, iteration: int, due_ns: int) -> None:
        """Keep a planned iteration that never ran (its connection was gone) as NOT_SENT."""
        record = self.recorder.iteration(connection, iteration, due_ns, 0)
        record.error = LocalError.NOT_SENT

    def _log(self, code: str, exc: BaseException) -> None:
        """Log the first exception of each code (the rows count them all)."""
        if code in self._logged:
            return
        self._logged.add(code)
        logger.warning("scenario %s: an iteration ended with %s (%s); later ones with the same "
                       "code are counted in the rows, not logged", self.name, code, exc,
                       exc_info=not isinstance(exc, StreamError | StreamClosed | TimeoutError))


class User:
    """One virtual user of a scenario, handed to ``user_flow(user)`` every iteration.

    Read :attr:`client` (its connection), :attr:`index`, :attr:`iteration` and
    :attr:`data`; time with :meth:`request`, :meth:`step` and :meth:`record`; count
    with :meth:`check`; pause with :meth:`sleep`. Keep per-user state in :attr:`state`.
    """

    def __init__(self, run: ScenarioRun, client: LoadClient) -> None:
        self.client = client
        """A connected client of the test's protocol: ``asend``/``arecv``/``arequest``/
        ``achat`` (and their plain twins), as ``nbstream.Client`` has them. Untimed:
        time with ``user.request`` or ``user.step``."""
        self.index = client.index
        """This user's number (its connection's index), from 0."""
        self.iteration = 0
        """The iteration running: per user in the closed model, the timetable's in the open."""
        self.data: Any = None
        """This iteration's row of ``data`` (a dict for a DataFrame row), or None."""
        self.state: dict[str, Any] = {}
        """Whatever the flow wants to keep between this user's iterations."""
        self._run = run
        self._recorder = run.recorder
        self._timeout = run.timeout
        self._record: IterationRecord | None = None
        self._lag_ns = 0
        self._recorded: BaseException | None = None
        """The exception a step already recorded as a row (not to be recorded twice)."""

    def request(self, value: Any, until: Until | None = None, name: str | None = None,
                timeout: float | None = None) -> Coroutine[Any, Any, list[Message]]:
        """Send ``value`` and wait for its reply, timed as a row of step ``name``:
        ``replies = await user.request(value)``.

        ``value`` and ``until`` are those of ``client.request``: the replies up to and
        including the first for which ``until(message)`` is true (default: the first
        reply; nbstream protocol: the ``end`` or error answering it).

        Raises:
            StreamError, TimeoutError, StreamClosed: after recording the row with that
                error; if the flow lets it escape, the iteration ends (not recorded
                twice). A TIMEOUT aborts the connection.
            TypeError: for a value the protocol cannot send (nothing is sent).
        """
        client = self.client
        return client.exchange(client.outgoing(value), until,
                               self._timeout if timeout is None else timeout,
                               self.iteration, name or REQUEST_STEP, 0, self._lag_ns)

    def step(self, name: str) -> Step:
        """Time a block as a row of step ``name``: ``async with user.step("login"): ...``.

        An exception that leaves the block makes the row an error row (and goes on).
        """
        return Step(self, name)

    def record(self, step: str, seconds: float, error: str | None = None) -> None:
        """Keep a figure measured some other way as a row of ``step``: it ended now and
        took ``seconds`` (e.g. a barge-in latency); ``error`` marks it failed."""
        now = self._recorder.clock()
        started = now - round(seconds * 1e9)
        self._recorder.interval(self.index, self.iteration, step, started - self._lag_ns,
                                started, now, error)

    def check(self, name: str, ok: object) -> bool:
        """Count a check named ``name`` as passed when ``ok`` is true; returns it as a bool.

        Checks never raise: a failed one is counted in ``LoadResult.checks``.
        """
        passed = bool(ok)
        self._recorder.check(name, passed)
        return passed

    async def sleep(self, seconds: float) -> None:
        """Think time: wait ``seconds`` (reading the connection meanwhile, so that pings
        are answered). Counted in ``LoadResult.iterations.think_time``, not in any step."""
        clock = self._recorder.clock
        started = clock()
        await self.client.idle(seconds)
        if self._record is not None:
            self._record.think_ns += clock() - started

    def __repr__(self) -> str:
        return f"<nbstream.loadtest.User {self.index} iteration {self.iteration}>"


class Step:
    """The timer of ``user.step(name)``: a row of ``name`` from entering to leaving."""

    __slots__ = ("name", "started_ns", "user")

    def __init__(self, user: User, name: str) -> None:
        self.user = user
        self.name = name
        self.started_ns = 0

    def __enter__(self) -> Step:
        self.started_ns = self.user._recorder.clock()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        user = self.user
        code = None if exc is None else error_code(exc)
        user._recorder.interval(user.index, user.iteration, self.name,
                                self.started_ns - user._lag_ns, self.started_ns,
                                user._recorder.clock(), code)
        if exc is not None:
            user._recorded = exc

    async def __aenter__(self) -> Step:
        return self.__enter__()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        self.__exit__(kind, exc, traceback)

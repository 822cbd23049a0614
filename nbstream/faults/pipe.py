"""The sans-I/O core of the fault proxy: a pipe per direction, two pipes per link.

A :class:`Pipe` runs units through its message stages (WebSocket-level faults, in
the order they were added), turns them into bytes, and runs those through its byte
stages (TCP-level faults). A :class:`Link` is one proxied connection: the readers
that turn each direction's bytes into units, and the two pipes. Time comes in as
``now`` and randomness from the ``rng`` given, so tests drive both with a fake
clock and no sockets; :mod:`nbstream.faults.shell` moves the bytes.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from nbstream.faults.frames import StreamReader, decode_unit
from nbstream.faults.stage import Stage
from nbstream.faults.units import Item, Note, Signal, Unit, UnitKind, Way
from nbstream.faults.vocabulary import Fault
from nbstream.protocol import Message, MessageType


class Pipe:
    """One direction of one connection, through its faults.

    Feed it with :meth:`push` and :meth:`finish`; take what is due with
    :meth:`poll` (bytes and signals, in order) and :meth:`notes`; wake it at
    :meth:`deadline`. While :attr:`frozen`, nothing comes out (it is kept).
    """

    def __init__(self, way: Way) -> None:
        self.way = way
        self.frozen = False
        self.report_frames = False
        """Note every message written on (set while someone watches the events)."""
        self._messages: dict[str, Stage[Unit]] = {}
        self._bytes: dict[str, Stage[Item]] = {}
        self._out: list[Item] = []
        self._out_bytes = 0
        self._in_bytes = 0
        self._notes: list[Note] = []
        self._waiting: deque[tuple[int, Note]] = deque()
        """Notes due once the bytes before them are written (so they show in order)."""

    # -- faults ----------------------------------------------------------------------

    def install(self, fault: Fault, rng: random.Random, now: float) -> None:
        """Start ``fault`` on this direction, after the faults already there."""
        def report(detail: dict[str, Any]) -> None:
            self._notes.append(Note("fault", self.way, detail={**detail, "id": fault.id}))

        stage = fault.stage(rng, now, report)
        if fault.kind.layer == "websocket":
            self._messages[fault.id] = stage
        else:
            self._bytes[fault.id] = stage

    def update(self, fault: Fault) -> None:
        """Give a running fault its new parameters."""
        stage = self._messages.get(fault.id) or self._bytes.get(fault.id)
        if stage is not None:
            stage.configure(fault.stage_params())

    def uninstall(self, fault_id: str, now: float) -> None:
        """Stop a fault; what it held goes on to the faults after it, at once."""
        if fault_id in self._messages:
            position = list(self._messages).index(fault_id)
            units = self._messages.pop(fault_id).release(now)
            self._bytes_through(now, self._units_through(now, units, position), 0)
        elif fault_id in self._bytes:
            position = list(self._bytes).index(fault_id)
            items = self._bytes.pop(fault_id).release(now)
            self._bytes_through(now, items, position)
        self._settle_notes()

    # -- data ---------------------------------------------------------------------------

    def push(self, units: list[Unit], now: float) -> None:
        """Units that arrived from the sender at ``now``."""
        if units:
            self._bytes_through(now, self._units_through(now, [(now, u) for u in units], 0), 0)
            self._settle_notes()

    def finish(self, now: float) -> None:
        """The sender ended its stream (EOF) at ``now``."""
        self.push([Unit.of_signal(Signal.EOF)], now)

    def poll(self, now: float) -> list[Item]:
        """What is due by ``now``, in order: bytes to write and signals to act on."""
        self._bytes_through(now, self._units_through(now, [], 0), 0)
        self._settle_notes()
        if self.frozen:
            return []
        out, self._out = self._out, []
        return out

    def notes(self) -> list[Note]:
        """What happened since the last call (messages written on, faults acting)."""
        notes, self._notes = self._notes, []
        return notes

    def _stages(self) -> list[Stage[Any]]:
        return [*self._messages.values(), *self._bytes.values()]

    def deadline(self) -> float | None:
        """When :meth:`poll` next has something without a push, or None."""
        times = [t for stage in self._stages() if (t := stage.deadline()) is not None]
        return min(times) if times else None

    @property
    def held_bytes(self) -> int:
        """Bytes inside the pipe (the shell stops reading the sender above a bound)."""
        held = sum(stage.held_bytes for stage in self._stages())
        return held + sum(len(item) for item in self._out if isinstance(item, bytes))

    # -- the way through ------------------------------------------------------------------

    def _units_through(self, now: float, batch: list[tuple[float, Unit]],
                       start: int) -> list[tuple[float, Item]]:
        for stage in list(self._messages.values())[start:]:
            for at, unit in batch:
                stage.push(unit, at)
            batch = stage.take(now)
        items: list[tuple[float, Item]] = []
        run: list[bytes] = []
        run_at = 0.0
        for at, unit in batch:
            if unit.kind is UnitKind.NOTE:
                self._waiting.append((self._in_bytes, Note("fault", self.way,
                                                           detail=unit.detail)))
                continue
            if run and at != run_at:
                items.append((run_at, b"".join(run)))
                run = []
            if unit.kind is UnitKind.SIGNAL:
                if run:
                    items.append((run_at, b"".join(run)))
                    run = []
                assert unit.signal is not None
                items.append((at, unit.signal))
                continue
            run.append(unit.raw)
            run_at = at
            self._in_bytes += len(unit.raw)
            if unit.kind is UnitKind.MESSAGE and self.report_frames:
                self._waiting.append((self._in_bytes, Note("frame", self.way, unit.opcode,
                                                           unit.payload, unit=unit)))
        if run:
            items.append((run_at, b"".join(run)))
        return items

    def _bytes_through(self, now: float, items: list[tuple[float, Item]], start: int) -> None:
        for stage in list(self._bytes.values())[start:]:
            for at, item in items:
                stage.push(item, at)
            items = stage.take(now)
            if any(item is Signal.RESET for _, item in items):
                items = [(now, Signal.RESET)]  # a reset skips the queues behind it
                break
        for _, item in items:
            self._out.append(item)
            if isinstance(item, bytes):
                self._out_bytes += len(item)

    def _settle_notes(self) -> None:
        waiting = self._waiting
        while waiting and waiting[0][0] <= self._out_bytes:
            self._notes.append(waiting.popleft()[1])


class Link:
    """One proxied connection: its two readers and two pipes, and who it belongs to.

    ``rng`` seeds every fault installed on it (in the order installed), so a seeded
    proxy makes the same choices for the same connections.
    """

    def __init__(self, number: int, rng: random.Random) -> None:
        self.number = number
        self.rng = rng
        self.readers = {"up": StreamReader("up"), "down": StreamReader("down")}
        self.pipes = {"up": Pipe("up"), "down": Pipe("down")}
        self.welcome_session: str | None = None
        self._welcome_checked = False

    @property
    def session_id(self) -> str:
        """The nbstream session (from the welcome, or the request), else ``proxy-N``."""
        if self.welcome_session:
            return self.welcome_session
        asked = self.readers["up"].query.get("session_id")
        return asked[0] if asked else f"proxy-{self.number}"

    def install(self, fault: Fault, now: float) -> None:
        """Start ``fault`` on this connection (for TCP-level faults: with its probability)."""
        for way in fault.ways:
            if fault.kind.layer == "tcp" and fault.probability < 1.0 \
                    and self.rng.random() >= fault.probability:
                continue
            self.pipes[way].install(fault, random.Random(self.rng.getrandbits(64)), now)

    def update(self, fault: Fault) -> None:
        """Give a running fault new parameters."""
        for pipe in self.pipes.values():
            pipe.update(fault)

    def uninstall(self, fault_id: str, now: float) -> None:
        """Stop a fault on this connection."""
        for pipe in self.pipes.values():
            pipe.uninstall(fault_id, now)

    def received(self, way: Way, data: bytes, now: float) -> None:
        """Bytes arrived from the sender of ``way``."""
        reader = self.readers[way]
        known = reader.status
        units = reader.feed(data)
        pipe = self.pipes[way]
        if way == "down":
            if not self._welcome_checked:
                self._check_welcome(units)
            pipe.push(units, now)
            if known is None and reader.status is not None:
                up = self.readers["up"].upgrade(reader.status == 101)
                self.pipes["up"].push(up, now)
        else:
            pipe.push(units, now)

    def _check_welcome(self, units: list[Unit]) -> None:
        for unit in units:
            if unit.kind is UnitKind.MESSAGE:
                self._welcome_checked = True
                message = decode_unit(unit)
                if isinstance(message, Message) and message.type == MessageType.WELCOME \
                        and isinstance(message.data, dict):
                    self.welcome_session = str(message.data.get("session_id") or "") or None
                return

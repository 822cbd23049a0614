"""What one recording did differently from another, per session and direction.

Data frames (text and binary) of each session and direction are aligned as sequences
(difflib's longest matching blocks) on their payloads, with the JSON keys that change
on every run left out. Heartbeats (nbstream's in-band ping and pong) are left out too:
how many there are follows how long a session lasted. What does not align is
``missing`` or ``extra``, unless the same payload is missing at one place and extra at
another: that frame ``moved``; a payload replaced by another at the same place is
``changed``; aligned frames more than ``tolerance`` seconds off are a ``timing``
change. Times compared:

* a client frame (c2s): seconds after the session's first client frame, multiplied
  by the recording's replay ``speed`` (so a replay at 4x compares with the original);
  skipped when either recording was replayed with timing ``fast`` or ``wait``;
* a server frame (s2c): seconds after the client frame that preceded it in the first
  recording (the n-th client frame, on both sides): how long the server took, not
  scaled; skipped for ``fast`` replays, whose replies queue behind each other.
"""

from __future__ import annotations

import bisect
import difflib
import json
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nbstream.recording.frames import Frame
from nbstream.recording.script import conversation, heartbeat_types

if TYPE_CHECKING:
    import pandas as pd

    from nbstream.recording.recorder import Recorder

VOLATILE = frozenset({"id", "timestamp", "session_id", "epoch", "tool_use_id", "reply_to"})
"""JSON keys left out of comparisons by default: they differ on every run."""

COLUMNS = ["session", "direction", "change", "index", "other_index", "type", "time",
           "other_time", "shift", "payload", "other_payload"]


def diff(mine: Recorder, other: Recorder, *, tolerance: float,
         ignore: Iterable[str] | None) -> pd.DataFrame:
    """One row per difference between ``mine`` and ``other`` (see the module docstring).

    Columns: ``session``, ``direction``, ``change`` (missing, extra, moved, changed, timing),
    ``index``/``other_index`` (the frame's position among its session's frames in that
    direction), ``type``, ``time``/``other_time`` (seconds since each recording's
    start), ``shift`` (seconds later in ``other``, for timing changes), ``payload`` and
    ``other_payload``.
    """
    import pandas as pd

    ignored = VOLATILE if ignore is None else frozenset(ignore)
    timings = {r.meta.get("timing", "original") for r in (mine, other)}
    timed = {"c2s": timings == {"original"}, "s2c": "fast" not in timings}
    rows: list[dict[str, Any]] = []
    names = list(dict.fromkeys([*mine.info, *other.info,
                                *(f.session for f in mine.frames),
                                *(f.session for f in other.frames)]))
    mine_frames, other_frames = _by_session(mine), _by_session(other)
    for name in names:
        for direction in ("c2s", "s2c"):
            a = _Side(mine, mine_frames.get(name, []), direction, ignored)
            b = _Side(other, other_frames.get(name, []), direction, ignored)
            rows.extend(_compare(name, direction, a, b, tolerance,
                                 timed[direction]))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("index", "other_index"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _by_session(recorder: Recorder) -> dict[str, list[Frame]]:
    found: dict[str, list[Frame]] = {}
    heartbeat = heartbeat_types(recorder.protocol)
    for frame in sorted(recorder.frames, key=lambda f: f.at):
        if conversation(frame, heartbeat):
            found.setdefault(frame.session, []).append(frame)
    return found


class _Side:
    """One recording's frames of one session in one direction, with comparable keys."""

    def __init__(self, recorder: Recorder, frames: list[Frame], direction: str,
                 ignored: frozenset[str]) -> None:
        self.start = recorder.start
        self.speed = float(recorder.meta.get("speed", 1.0))
        self.frames = [f for f in frames if f.direction == direction]
        self.keys = [_key(f.payload, ignored) for f in self.frames]
        self.sent = [f.at for f in frames if f.direction == "c2s"]
        """When the client sent each of its frames."""
        self.first = frames[0].at if frames else 0.0
        self.after = [bisect.bisect_right(self.sent, f.at) - 1 for f in self.frames]
        """For each frame, the index of the last client frame sent before it (-1: none)."""

    def since_first_send(self, i: int) -> float:
        """Seconds from the session's first client frame to frame ``i``, times speed."""
        return (self.frames[i].at - (self.sent[0] if self.sent else self.first)) * self.speed

    def since_send(self, i: int, k: int) -> float:
        """Seconds from client frame ``k`` (or the session's first frame) to frame ``i``."""
        anchor = self.sent[k] if 0 <= k < len(self.sent) else self.first
        return self.frames[i].at - anchor


def _key(payload: str | bytes | None, ignored: frozenset[str]) -> str | bytes | None:
    if not isinstance(payload, str) or not ignored:
        return payload
    try:
        value = json.loads(payload)
    except ValueError:
        return payload
    if not isinstance(value, dict | list):
        return payload
    return json.dumps(_without(value, ignored), sort_keys=True, separators=(",", ":"))


def _without(value: Any, ignored: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, ignored) for k, v in value.items() if k not in ignored}
    if isinstance(value, list):
        return [_without(v, ignored) for v in value]
    return value


def _compare(name: str, direction: str, a: _Side, b: _Side, tolerance: float,
             timed: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    missing: list[int] = []
    extra: list[int] = []

    def row(change: str, i: int | None, j: int | None, shift: float | None = None) -> None:
        mine = a.frames[i] if i is not None else None
        theirs = b.frames[j] if j is not None else None
        rows.append({
            "session": name, "direction": direction, "change": change, "index": i,
            "other_index": j, "type": (mine or theirs).type,  # type: ignore[union-attr]
            "time": None if mine is None else mine.at - a.start,
            "other_time": None if theirs is None else theirs.at - b.start,
            "shift": shift, "payload": None if mine is None else mine.payload,
            "other_payload": None if theirs is None else theirs.payload,
        })

    matcher = difflib.SequenceMatcher(None, a.keys, b.keys, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                if direction == "c2s":
                    shift = b.since_first_send(j) - a.since_first_send(i)
                else:  # the reply's delay after the same client frame, on both sides
                    shift = b.since_send(j, a.after[i]) - a.since_send(i, a.after[i])
                if timed and abs(shift) > tolerance:
                    row("timing", i, j, shift)
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(paired):
            row("changed", i1 + k, j1 + k)
        missing.extend(range(i1 + paired, i2))
        extra.extend(range(j1 + paired, j2))
    # A frame only here and the same frame only there moved: pair them in order.
    elsewhere: dict[str | bytes | None, deque[int]] = {}
    for j in extra:
        elsewhere.setdefault(b.keys[j], deque()).append(j)
    moved: set[int] = set()
    for i in missing:
        there = elsewhere.get(a.keys[i])
        if there:
            j = there.popleft()
            moved.add(j)
            row("moved", i, j)
        else:
            row("missing", i, None)
    for j in extra:
        if j not in moved:
            row("extra", None, j)
    return rows

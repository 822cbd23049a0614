"""FlowLog: the fold is cheap and bounded; rows, filters, rates and details come later."""

from __future__ import annotations

import json
from typing import Any

from nbstream.events import FlowEvent
from nbstream.protocol import Message
from nbstream.views.flowlog import INVALID, MAX_JSON, OTHER, FlowLog, clock


def message_event(type: str = "content", data: Any = None, direction: str = "s2c",
                  session: str = "s1", at: float = 1_700_000_000.25) -> FlowEvent:
    kind = "out" if direction == "s2c" else "in"
    message = Message(type, {"text": "hi"} if data is None else data)
    return FlowEvent(kind, "server", session, direction=direction,  # type: ignore[arg-type]
                     message=message, at=at)


def test_fold_counts_types_and_directions() -> None:
    log = FlowLog()
    log.fold(message_event("chat", direction="c2s"))
    log.fold(message_event("content"))
    log.fold(message_event("content"))
    log.fold(FlowEvent("open", "server", "s1", user="alice"))
    assert log.counts == {"chat": 1, "content": 2}
    assert (log.c2s, log.s2c, log.total) == (1, 2, 3)


def test_heartbeat_events_do_not_show() -> None:
    log = FlowLog()
    assert not log.fold(FlowEvent("heartbeat", "server", "s1", detail={"rtt": 0.001}))
    assert log.rows() == []


def test_rows_are_bounded_whatever_the_rate() -> None:
    log = FlowLog(max_rows=50)
    for i in range(10_000):
        log.fold(message_event(data={"i": i}))
    rows = log.rows()
    assert len(rows) == 50
    assert json.loads(rows[-1].json)["data"] == {"i": 9_999}
    assert log.total == 10_000


def test_a_row_has_time_direction_session_type_size_and_preview() -> None:
    log = FlowLog()
    log.fold(message_event("content", {"text": "hello"}, session="abc"))
    row = log.rows()[0]
    _seq, when, direction, session, type, size, preview, user, gap = row.cells()
    assert (direction, session, type, user, gap) == ("s2c", "abc", "content", None, None)
    assert when == clock(1_700_000_000.25) and when.endswith(".250")
    assert size == len(row.json.encode()) and preview == '{"text":"hello"}'
    assert json.loads(row.pretty())["data"] == {"text": "hello"}


def test_invalid_frames_and_connection_events_get_rows() -> None:
    log = FlowLog()
    log.fold(FlowEvent("in", "server", "s1", direction="c2s", size=9, detail={"raw": "not json"}))
    log.fold(FlowEvent("close", "server", "s1", user="bob", detail={"code": 1011}))
    invalid, close = log.rows()
    assert (invalid.type, invalid.preview, invalid.size) == (INVALID, "not json", 9)
    assert log.counts == {INVALID: 1}
    assert (close.type, close.direction) == ("close", "")
    assert close.preview == "1011 internal error"


def test_filters_by_type_session_and_text() -> None:
    log = FlowLog()
    log.fold(message_event("chat", {"text": "Tell me a joke"}, "c2s", session="alice-1"))
    log.fold(message_event("content", {"text": "Why did"}, session="alice-1"))
    log.fold(message_event("content", {"text": "the chicken"}, session="bob-2"))
    assert [r.type for r in log.rows(type="chat")] == ["chat"]
    assert len(log.rows(session="bob")) == 1
    assert [r.session_id for r in log.rows(text="CHICKEN")] == ["bob-2"]
    assert log.rows(type="content", session="alice") == log.rows(text="why did")
    assert log.sessions() == ["alice-1", "bob-2"]


def test_huge_messages_are_cut_in_the_row() -> None:
    log = FlowLog()
    log.fold(message_event(data={"text": "x" * (3 * MAX_JSON)}))
    row = log.rows()[0]
    assert len(row.json) < MAX_JSON + 100 and "more characters" in row.json
    assert row.pretty() == row.json  # no longer valid JSON: shown as stored
    assert row.size > 3 * MAX_JSON


def test_types_beyond_the_limit_share_one_counter() -> None:
    log = FlowLog(max_types=2)
    for type in ("a", "b", "c", "d"):
        log.fold(message_event(type))
    assert log.counts == {"a": 1, "b": 1, OTHER: 2}


def test_rates_per_direction_over_the_window() -> None:
    log = FlowLog(window=1.0)
    assert log.rates(10.0) == (0.0, 0.0)
    for _ in range(20):
        log.fold(message_event(direction="s2c"))
    for _ in range(5):
        log.fold(message_event("chat", direction="c2s"))
    assert log.rates(10.5) == (10.0, 40.0)
    assert log.rates(12.0) == (0.0, 0.0)  # traffic stopped more than a window ago


def test_heartbeats_never_push_out_a_rare_type() -> None:
    log = FlowLog(max_rows=200)
    for i in range(1_000):
        log.fold(message_event("ping", direction="s2c", at=1_700_000_000 + i))
        log.fold(message_event("pong", direction="c2s", at=1_700_000_000 + i))
        if i % 20 == 0:
            log.fold(message_event("content", {"text": f"token {i}"}))
            log.rows()  # a view reads about ten times a second
    rows = log.rows()
    assert len(rows) == log.kept == 200
    assert len(log.rows(type="content")) == 50 == log.counts["content"]  # every one kept
    assert log.dropped == 2_050 - 200
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)  # still oldest first
    assert {r.type for r in rows[-3:]} <= {"ping", "pong", "content"}


def test_a_flood_between_two_reads_is_counted_as_dropped() -> None:
    log = FlowLog(max_rows=10)
    for i in range(25):
        log.fold(message_event(data={"i": i}))
    assert (log.kept, log.dropped) == (10, 15)
    assert json.loads(log.rows()[0].json)["data"] == {"i": 15}


def test_sessions_are_named_by_their_users() -> None:
    log = FlowLog()
    log.fold(FlowEvent("open", "server", "s1", user="alice"))
    log.fold(message_event(session="s2"))
    log.fold(FlowEvent("open", "server", "s2", user="bob"))
    assert log.session_users() == {"s1": "alice", "s2": "bob"}
    assert log.sessions() == ["s1", "s2"]


def test_a_refused_connection_is_a_row() -> None:
    log = FlowLog()
    log.fold(FlowEvent("refused", "server", "s9", user="bo",
                       detail={"code": 1013, "error": "TOO_MANY_CONNECTIONS"}))
    (row,) = log.rows(type="refused")
    assert row.preview == "user=bo code=1013 error=TOO_MANY_CONNECTIONS"
    assert log.counts == {}  # not a message

"""FlowLog rows for every protocol's frames: text, JSON, binary, ping/pong, close, gaps."""

from __future__ import annotations

import base64
import json

from nbstream.events import BINARY, CLOSE, PING, PONG, TEXT, FlowEvent
from nbstream.protocol import Message
from nbstream.views.flowlog import FlowLog, FlowRow
from nbstream.views.frames import HEX_DETAIL, MAX_DETAIL

AT = 1_700_000_000.0


def frame(message: Message | None, payload: str | bytes | None, *, opcode: int = TEXT,
          direction: str = "s2c", session: str = "s1", at: float = AT,
          detail: dict[str, object] | None = None) -> FlowEvent:
    size = len(payload.encode() if isinstance(payload, str) else payload or b"")
    return FlowEvent("in", "client", session, direction=direction,  # type: ignore[arg-type]
                     message=message, size=size, at=at, opcode=opcode, payload=payload,
                     detail=detail)


def only_row(*events: FlowEvent) -> FlowRow:
    log = FlowLog()
    for event in events:
        log.fold(event)
    return log.rows()[-1]


def test_a_text_frame_shows_its_text_whole() -> None:
    row = only_row(frame(Message("text", "hello there"), "hello there"))
    assert (row.type, row.size, row.preview, row.pretty()) == (
        "text", 11, "hello there", "hello there")


def test_a_json_value_is_compact_in_the_preview_and_indented_in_the_detail() -> None:
    value = {"type": "quote", "symbol": "ACME", "price": 101.5}
    payload = '{"type": "quote", "symbol": "ACME", "price": 101.5}'
    row = only_row(frame(Message("quote", value), payload))
    assert row.type == "quote"
    assert row.preview == '{"type":"quote","symbol":"ACME","price":101.5}'
    assert row.pretty() == json.dumps(value, indent=2)


def test_a_json_string_value_keeps_its_quotes_in_the_detail() -> None:
    row = only_row(frame(Message("message", "hi"), '"hi"'))
    assert (row.preview, row.pretty()) == ('"hi"', '"hi"')


def test_a_binary_frame_shows_its_size_hex_and_base64() -> None:
    data = bytes(range(40))
    row = only_row(frame(Message("binary", data), data, opcode=BINARY))
    assert row.type == "binary" and row.size == 40
    assert row.preview.startswith("40 B  00 01 02")
    assert row.preview.endswith("0f …")
    detail = row.pretty()
    assert "000010  10 11 12" in detail
    assert base64.b64encode(data).decode() in detail


def test_a_large_binary_frame_stays_within_the_detail_limit() -> None:
    data = bytes(200_000)
    row = only_row(frame(None, data, opcode=BINARY))
    assert row.type == "binary" and row.size == 200_000
    assert f"({200_000 - HEX_DETAIL:,} more bytes)" in row.json
    assert len(row.json) < MAX_DETAIL + 100


def test_ping_and_pong_frames_show_inline_with_the_round_trip() -> None:
    log = FlowLog()
    log.fold(frame(None, b"\x12\x34", opcode=PING, direction="c2s"))
    log.fold(frame(None, b"\x12\x34", opcode=PONG, detail={"rtt": 0.00042}))
    ping, pong = log.rows()
    assert (ping.type, ping.direction, ping.preview) == ("ping", "c2s", "12 34")
    assert (pong.type, pong.preview) == ("pong", "rtt 0.42 ms 12 34")
    assert json.loads(pong.json)["rtt"] == 0.00042
    assert log.counts == {"ping": 1, "pong": 1}


def test_close_rows_name_the_code_and_the_reason() -> None:
    log = FlowLog()
    log.fold(FlowEvent("close", "server", "s1", detail={"code": 1001,
                                                        "reason": "server shutting down"}))
    log.fold(frame(None, b"", opcode=CLOSE, session="s2",
                   detail={"code": 4002, "reason": "slow consumer"}))
    log.fold(FlowEvent("close", "client", "s3", detail={"code": None, "reason": ""}))
    previews = [(row.type, row.preview) for row in log.rows()]
    assert previews == [("close", "1001 going away: server shutting down"),
                        ("close", "4002 slow consumer: slow consumer"),
                        ("close", "no close code")]


def test_the_gap_is_the_time_since_the_previous_row_of_the_same_session() -> None:
    log = FlowLog()
    log.fold(frame(Message("text", "a"), "a", session="s1", at=AT))
    log.fold(frame(Message("text", "b"), "b", session="s2", at=AT + 0.5))
    log.fold(frame(Message("text", "c"), "c", session="s1", at=AT + 1.25))
    log.fold(FlowEvent("close", "server", "s1", at=AT + 3.0, detail={"code": 1000}))
    gaps = [(row.session_id, row.gap) for row in log.rows()]
    assert gaps == [("s1", None), ("s2", None), ("s1", 1.25), ("s1", 1.75)]
    assert log.rows()[2].cells()[8] == 1.25


def test_a_frame_whose_content_was_not_kept_still_gets_a_row() -> None:
    row = only_row(FlowEvent("in", "client", "s1", direction="s2c", size=12, at=AT))
    assert (row.type, row.size, row.preview) == ("frame", 12, "")

"""HAR files: Chromium's shape read and written back; bad files get errors naming the
entry, and nothing readable is lost with strict=False."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from nbstream import ErrorCode, Recording, StreamError

STARTED = "2026-12-01T17:01:54.082Z"
T = 1796144514.082
"""STARTED as epoch seconds."""


def entry(messages: list[dict[str, Any]], url: str = "ws://127.0.0.1:8765/ws",
          **extra: Any) -> dict[str, Any]:
    """A WebSocket entry as devtools writes it (time in seconds)."""
    return {"startedDateTime": STARTED, "time": 12.5,
            "request": {"method": "GET", "url": url, "headers": []},
            "response": {"status": 101, "headers": [
                {"name": "Sec-WebSocket-Protocol", "value": "nbstream.v1"}]},
            "_resourceType": "websocket", "_webSocketMessages": messages, **extra}


def har(*entries: dict[str, Any]) -> dict[str, Any]:
    page = {"startedDateTime": STARTED, "request": {"url": "http://127.0.0.1:1/"},
            "response": {"status": 200}, "_resourceType": "document"}
    return {"log": {"version": "1.2", "creator": {"name": "WebInspector"},
                    "entries": [page, *entries]}}


GOOD: list[dict[str, Any]] = [
    {"type": "send", "time": T + 0.01, "opcode": 1, "data": '{"type":"chat","data":"hi"}'},
    {"type": "receive", "time": T + 0.02, "opcode": 1, "data": '{"type":"content"}'},
    {"type": "send", "time": T + 0.03, "opcode": 2, "data": base64.b64encode(b"\x00\xff").decode()},
]


def test_a_devtools_har_becomes_one_session_per_entry() -> None:
    rec = Recording.from_har(har(entry(GOOD), entry(GOOD[:1], url="ws://h:2/other")))
    assert list(rec.sessions["session"]) == ["ws-1", "ws-2"]
    assert list(rec.sessions["url"]) == ["ws://127.0.0.1:8765/ws", "ws://h:2/other"]
    assert rec.info["ws-1"].subprotocol == "nbstream.v1"
    assert rec.start == T and rec.info["ws-1"].opened == T
    one = rec.frame[rec.frame["session"] == "ws-1"]
    assert list(one["direction"]) == ["c2s", "s2c", "c2s"]
    assert list(one["type"]) == ["chat", "content", "binary"]
    assert one["payload"].iloc[2] == b"\x00\xff" and list(one["size"]) == [27, 18, 2]
    assert [round(t, 6) for t in one["time"]] == [0.01, 0.02, 0.03]


def test_milliseconds_are_told_from_seconds_by_the_start_date() -> None:
    in_ms = [{**m, "time": m["time"] * 1000} for m in GOOD]
    seconds = Recording.from_har(har(entry(GOOD)))
    millis = Recording.from_har(har(entry(in_ms)))
    assert [round(f.at, 6) for f in millis.frames] == [round(f.at, 6) for f in seconds.frames]
    no_date = entry(in_ms)
    del no_date["startedDateTime"]
    assert round(Recording.from_har(har(no_date)).frames[0].at, 6) == round(T + 0.01, 6)


def test_har_out_and_in_again_loses_nothing(tmp_path: Path) -> None:
    original = Recording.from_har(har(entry(GOOD), entry(GOOD[1:], url="ws://h:2/x")))
    written = original.to_har(tmp_path / "out.har")
    again = Recording.from_har(tmp_path / "out.har")
    assert again.frames == original.frames
    assert again.info == original.info and again.start == original.start
    assert written == json.loads((tmp_path / "out.har").read_text())


def test_to_har_writes_what_devtools_reads() -> None:
    log = Recording.from_har(har(entry(GOOD))).to_har()["log"]
    assert log["version"] == "1.2" and log["creator"]["name"] == "nbstream"
    [written] = log["entries"]
    for key in ("startedDateTime", "time", "request", "response", "cache", "timings"):
        assert key in written
    assert written["_resourceType"] == "websocket"
    assert written["response"]["status"] == 101
    assert written["_webSocketMessages"] == GOOD
    assert {"name": "Sec-WebSocket-Protocol", "value": "nbstream.v1"} in \
        written["request"]["headers"]


def test_to_har_redacts_tokens_in_urls_and_frames() -> None:
    secret = entry([{"type": "send", "time": T, "opcode": 1,
                     "data": '{"type":"auth","data":{"token":"s3cret"}}'}],
                   url="ws://h:1/ws?token=s3cret")
    rec = Recording.from_har(har(secret))
    assert "s3cret" not in json.dumps(rec.to_har())
    assert "s3cret" in json.dumps(rec.to_har(redact=False))


def expect_error(document: Any, *words: str, tmp_path: Path | None = None) -> StreamError:
    with pytest.raises(StreamError) as caught:
        Recording.from_har(document)
    error = caught.value
    assert error.code == ErrorCode.INVALID_RECORDING
    for word in words:
        assert word in str(error), str(error)
    return error


def test_a_har_without_websocket_entries() -> None:
    expect_error(har(), "no WebSocket entry among its 1 entries", "record_har_path")


def test_not_a_har_at_all() -> None:
    expect_error({"hello": 1}, "no log.entries")


def test_a_truncated_file_says_where_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "cut.har"
    text = json.dumps(har(entry(GOOD)), indent=2)
    path.write_text(text[: len(text) // 2])
    error = expect_error(path, "cut.har", "not complete JSON", "truncated")
    assert error.details["line"] > 1


def test_a_binary_file_is_not_a_har(tmp_path: Path) -> None:
    path = tmp_path / "x.har"
    path.write_bytes(b"\xff\xfe\x00junk")
    expect_error(path, "x.har", "not UTF-8")


@pytest.mark.parametrize(("message", "words"), [
    ({"type": "send", "time": T, "opcode": 7, "data": "x"}, ["opcode 7", "1 text, 2 binary"]),
    ({"type": "send", "time": T, "opcode": 2, "data": "%%%not base64"}, ["not valid base64"]),
    ({"type": "sideways", "time": T, "opcode": 1, "data": "x"}, ["type 'sideways'"]),
    ({"type": "send", "time": "soon", "opcode": 1, "data": "x"}, ["time 'soon'"]),
    ({"type": "send", "time": float("nan"), "opcode": 1, "data": "x"}, ["time nan"]),
    ({"type": "send", "time": T, "opcode": 1, "data": 5}, ["data is int"]),
    ("just a string", ["is str, not an object"]),
])
def test_a_bad_message_is_named_and_strict_false_keeps_the_others(
        message: Any, words: list[str]) -> None:
    document = har(entry(GOOD), entry([GOOD[0], message, GOOD[1]], url="ws://h:2/bad"))
    error = expect_error(document, "entry 2 (ws://h:2/bad), message 1", "strict=False", *words)
    assert (error.details["entry"], error.details["message"]) == (2, 1)
    untouched = copy.deepcopy(document)
    lenient = Recording.from_har(document, strict=False)
    assert document == untouched
    assert len(lenient.frames) == len(GOOD) + 2
    assert len(lenient.problems) == 1 and "message 1" in lenient.problems[0]


def test_an_entry_without_url() -> None:
    broken = entry(GOOD)
    broken["request"] = {}
    expect_error(har(broken), "entry 1 has no request.url")


def test_the_browsers_error_items_are_noted_not_frames() -> None:
    error = {"type": "error", "time": T, "opcode": -1, "data": "net::ERR_CONNECTION_RESET"}
    rec = Recording.from_har(har(entry([*GOOD, error])))
    assert len(rec.frames) == len(GOOD)
    assert rec.problems == ["the HAR: entry 1 (ws://127.0.0.1:8765/ws), message 3: the browser "
                            "reported 'net::ERR_CONNECTION_RESET'"]


def test_control_frames_from_other_tools_are_read() -> None:
    others = [{"type": "receive", "time": T, "opcode": 9, "data": base64.b64encode(b"p").decode()},
              {"type": "receive", "time": T + 1, "opcode": 8, "data": "bye", "code": 1001}]
    rec = Recording.from_har(har(entry(others)))
    assert [(f.opcode, f.payload, f.close_code) for f in rec.frames] == \
        [(9, b"p", None), (8, "bye", 1001)]
    assert rec.info["ws-1"].close_code == 1001

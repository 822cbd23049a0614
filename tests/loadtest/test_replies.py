"""How replies are matched to the message in flight (no sockets: frames fed by hand)."""

from __future__ import annotations

import json

from nbstream.events import EventStream
from nbstream.loadtest.recorder import Recorder
from nbstream.loadtest.runner import _Connection
from nbstream.protocol import Message, encode, encode_batch

EVENTS = EventStream()


def in_flight(message_id: str = "m1") -> tuple[_Connection, Recorder]:
    now = [100]
    recorder = Recorder(lambda: now[0])
    conn = _Connection(0, recorder)
    conn.current = recorder.message(0, 0, 100, 100, 10)
    conn.current_id = message_id
    return conn, recorder


def frame(type_: str, data: object) -> bytes:
    return encode(Message(type_, data))


def test_stream_then_end_finishes_the_message() -> None:
    conn, recorder = in_flight()
    record = conn.current
    assert conn.on_envelope(frame("content", {"text": "a"}), 150, EVENTS) is None
    assert conn.current is record and record.first_ns == 150
    conn.on_envelope(frame("end", {"reply_to": "m1"}), 170, EVENTS)
    assert conn.current is None and record.done_ns == 170 and record.error is None
    assert record.replies == 2 and record.answered and recorder.completed == 1


def test_replies_to_other_messages_are_ignored() -> None:
    conn, _ = in_flight()
    record = conn.current
    conn.on_envelope(frame("end", {"reply_to": "someone else"}), 150, EVENTS)
    conn.on_envelope(frame("content", {"text": "x", "reply_to": "old"}), 150, EVENTS)
    assert conn.current is record and record.replies == 0


def test_an_error_envelope_answers_with_its_code() -> None:
    conn, recorder = in_flight()
    record = conn.current
    error = {"code": "RATE_LIMITED", "recoverable": True, "details": {"reply_to": "m1"}}
    conn.on_envelope(frame("error", error), 130, EVENTS)
    assert record.error == "RATE_LIMITED" and record.answered and recorder.errors == 1
    assert conn.record.error is None  # recoverable: the connection goes on


def test_an_unrecoverable_error_ends_the_connection() -> None:
    conn, _ = in_flight()
    conn.on_envelope(frame("error", {"code": "TOO_MANY_CONNECTIONS", "recoverable": False}),
                     130, EVENTS)
    assert conn.record.error == "TOO_MANY_CONNECTIONS" and not conn.alive


def test_pings_are_answered_and_pongs_finish_pings() -> None:
    conn, _ = in_flight("p1")
    ping = Message("ping", {})
    pong = conn.on_envelope(encode(ping), 120, EVENTS)
    assert pong is not None and json.loads(pong)["data"] == {"ping_id": ping.id}
    assert conn.current is not None
    conn.on_envelope(frame("pong", {"ping_id": "p1"}), 140, EVENTS)
    assert conn.current is None


def test_batches_are_unpacked() -> None:
    conn, _ = in_flight()
    record = conn.current
    batch = encode_batch([frame("content", {"text": "a"}), frame("end", {"reply_to": "m1"})])
    conn.on_envelope(batch, 150, EVENTS)
    assert record.replies == 2 and record.done_ns == 150
    assert record.bytes_in == len(batch) // 2 * 2
    assert conn.on_envelope(encode_batch([]), 160, EVENTS) is None


def test_a_frame_that_is_not_an_envelope_counts_as_a_reply() -> None:
    conn, _ = in_flight()
    record = conn.current
    conn.on_envelope(b"plain text", 150, EVENTS)
    assert record.replies == 1 and record.first_ns == 150 and conn.current is record


def test_raw_mode_takes_the_first_frame_as_the_answer() -> None:
    conn, _ = in_flight()
    record = conn.current
    conn.on_raw(b"echo", 180, EVENTS)
    assert record.done_ns == record.first_ns == 180 and record.bytes_in == 4
    conn.on_raw(b"unasked", 190, EVENTS)  # nothing in flight: ignored
    assert record.replies == 1

"""FlowEvents become frames: payloads, opcodes, types, closes; sources' sessions."""

from __future__ import annotations

from nbstream import EventStream, FlowEvent, Message
from nbstream.events import BINARY, CLOSE, PING, TEXT
from nbstream.recording.frames import TypeNamer, frame_of, redacted
from nbstream.recording.recorder import Recorder
from nbstream.wire import create


def test_a_message_event_keeps_its_payload_opcode_and_type() -> None:
    event = FlowEvent("in", "server", "s1", direction="c2s", message=Message("chat", {}),
                      size=12, at=5.0, opcode=TEXT, payload='{"type":"chat"}')
    frame = frame_of(event, "s1")
    assert frame is not None
    assert (frame.at, frame.direction, frame.opcode, frame.type, frame.size, frame.payload) \
        == (5.0, "c2s", TEXT, "chat", 12, '{"type":"chat"}')


def test_a_binary_frame_without_opcode_is_told_by_its_payload() -> None:
    event = FlowEvent("out", "client", "s1", direction="c2s", payload=b"\x00\xff", at=1.0)
    frame = frame_of(event, "s1")
    assert frame is not None and frame.opcode == BINARY and frame.size == 2


def test_a_message_seen_without_payload_is_encoded_by_the_sources_protocol() -> None:
    message = Message("content", {"text": "hi"})
    event = FlowEvent("in", "client", "s1", direction="s2c", message=message, at=1.0)
    frame = frame_of(event, "s1", protocol=create("nbstream"))
    assert frame is not None and frame.payload == message.to_json()
    assert frame.size == len(message.to_json())


def test_a_close_keeps_its_code_and_reason() -> None:
    event = FlowEvent("close", "server", "s1", at=2.0, detail={"code": 1001, "reason": "bye"})
    frame = frame_of(event, "s1")
    assert frame is not None
    assert (frame.opcode, frame.close_code, frame.payload, frame.direction) == \
        (CLOSE, 1001, "bye", None)


def test_events_that_are_not_frames_are_left_out() -> None:
    for kind in ("open", "heartbeat", "refused", "fault"):
        assert frame_of(FlowEvent(kind, "server", "s1"), "s1") is None


def test_a_namer_names_types_from_payloads() -> None:
    namer = TypeNamer("nbstream")
    event = FlowEvent("in", "client", "", direction="s2c", message=Message("text", "x"),
                      opcode=TEXT, payload='{"type":"end","data":{}}')
    frame = frame_of(event, "s1", namer=namer)
    assert frame is not None and frame.type == "end"
    assert namer.type_of(b"\x01") == "binary" and namer.type_of("not json") == "text"
    assert TypeNamer("raw").type_of('{"type":"end"}') == "text"


def test_control_frames_keep_their_opcode_and_get_no_type() -> None:
    event = FlowEvent("out", "server", "s1", direction="s2c", opcode=PING, payload=b"p1")
    frame = frame_of(event, "s1", namer=TypeNamer("json"))
    assert frame is not None and frame.opcode == PING and frame.type is None


def test_redaction_takes_tokens_out_of_text_payloads_only() -> None:
    auth = frame_of(FlowEvent("in", "server", "s1", direction="c2s", opcode=TEXT,
                              payload='{"type":"auth","data":{"token":"s3cret"}}'), "s1")
    binary = frame_of(FlowEvent("in", "server", "s1", direction="c2s", opcode=BINARY,
                                payload=b'token=s3cret'), "s1")
    assert auth is not None and binary is not None
    assert "s3cret" not in str(redacted(auth).payload)
    assert redacted(binary) == binary


def test_a_recorder_names_sessions_notes_opens_and_closes() -> None:
    recorder = Recorder(start=0.0)
    events = EventStream()
    recorder.attach(events, url="ws://h/ws", default_session="anon")
    events.publish(FlowEvent("open", "server", "s1", user="ann", at=1.0))
    events.publish(FlowEvent("in", "server", "", direction="c2s", opcode=TEXT, payload="x",
                             at=1.5))
    events.publish(FlowEvent("close", "server", "s1", at=2.0, detail={"code": 1000}))
    recorder.stop()
    events.publish(FlowEvent("in", "server", "s1", direction="c2s", opcode=TEXT,
                             payload="late", at=3.0))
    assert [f.session for f in recorder.frames] == ["anon", "s1"]
    s1 = recorder.info["s1"]
    assert (s1.url, s1.user, s1.opened, s1.closed, s1.close_code) == \
        ("ws://h/ws", "ann", 1.0, 2.0, 1000)
    assert not recorder.live

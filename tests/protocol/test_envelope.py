import json
import os
import time
from collections.abc import Iterator

import pytest

from nbstream.protocol import (
    ErrorCode,
    Message,
    MessageType,
    StreamError,
    encode,
    encode_batch,
    envelope,
    parse_client_frame,
    parse_server_frame,
)


def test_message_fills_id_and_utc_timestamp() -> None:
    a, b = Message("content", {"text": "x"}), Message("content", {"text": "x"})
    assert a.id != b.id
    assert a.timestamp.endswith("+00:00")
    assert json.loads(encode(a)) == {"type": "content", "data": {"text": "x"},
                                     "id": a.id, "timestamp": a.timestamp}


@pytest.fixture
def clock() -> Iterator[list[int]]:
    """A settable wall clock for message timestamps (the real one restored after)."""
    now = [1_767_225_600_000_000_000]  # 2026-01-01T00:00:00Z
    envelope.use_clock(lambda: now[0])
    yield now
    envelope.use_clock(time.time_ns)


def test_a_forked_process_makes_ids_its_parent_never_makes() -> None:
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report one id and leave at once
        os.write(write, envelope.new_id().encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        child_id = pipe.read()
    assert os.waitstatus_to_exitcode(status) == 0
    parent_id = envelope.new_id()
    assert child_id.split("-")[0] != parent_id.split("-")[0]


def test_timestamps_follow_the_clock_by_millisecond_both_ways(clock: list[int]) -> None:
    first = envelope.utc_timestamp()
    assert first == "2026-01-01T00:00:00.000+00:00"
    clock[0] += 999_999
    assert envelope.utc_timestamp() is first  # same millisecond: the string is reused
    clock[0] += 1
    assert envelope.utc_timestamp() == "2026-01-01T00:00:00.001+00:00"
    clock[0] -= 3_600_000_000_000  # the wall clock stepped back an hour
    assert envelope.utc_timestamp() == "2025-12-31T23:00:00.001+00:00"
    clock[0] -= 1
    assert envelope.utc_timestamp() == "2025-12-31T23:00:00.000+00:00"


def test_message_is_immutable() -> None:
    message = Message("content", {})
    with pytest.raises(AttributeError):
        message.type = "end"  # type: ignore[misc]


@pytest.mark.parametrize("frame", [
    '{"type": "chat", "data": {"text": "hi"}}',
    '{"type": "chat", "content": "hi"}',
])
def test_chat_text_arrives_in_data_text_whichever_form(frame: str) -> None:
    message = parse_client_frame(frame)
    assert isinstance(message, Message)
    assert message.type == MessageType.CHAT
    assert message.data["text"] == "hi"


def test_client_id_is_kept() -> None:
    message = parse_client_frame('{"type": "ping", "id": "abc"}')
    assert isinstance(message, Message) and message.id == "abc"


@pytest.mark.parametrize(("frame", "words"), [
    ('{"invalid": "message"}', "missing required field `type`"),
    ("not json", "malformed JSON"),
    ('{"type": "content", "data": {}}', "unknown message type 'content'"),
    ('{"type": "chat", "data": {"text": 3}}', "data.text"),
    ('{"type": "chat"}', "data.text"),
    ('{"type": 5}', "wrong message shape"),
    pytest.param('{"type": "chat", "data": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001,
                 "malformed JSON", id="deeply-nested"),
    (b'{"type": "chat"}', "binary frames"),
])
def test_bad_frames_become_invalid_message(frame: str | bytes, words: str) -> None:
    error = parse_client_frame(frame)
    assert isinstance(error, StreamError)
    assert error.code == ErrorCode.INVALID_MESSAGE
    assert error.recoverable
    assert words in error.message


def test_batch_unpacks_in_order() -> None:
    parts = [encode(Message("content", {"text": str(i)})) for i in range(3)]
    messages = parse_server_frame(encode_batch(parts))
    assert [m.data["text"] for m in messages] == ["0", "1", "2"]


def test_batch_parses_the_same_in_any_key_order_and_rejects_bad_members() -> None:
    """nbstream's own batches take a one-pass decoder; other key orders the general one."""
    parts = [encode(Message("content", {"text": str(i)}, f"e:{i}", "t")) for i in range(3)]
    ours = encode_batch(parts)
    assert ours.startswith(b'{"type":"batch",')
    reordered = json.dumps({"data": json.loads(ours)["data"], "type": "batch"})
    assert parse_server_frame(ours) == parse_server_frame(reordered) == \
        parse_server_frame(ours.decode())
    for bad in (b'{"type":"batch","data":{"messages":[{"text":"no type"}]}}',
                b'{"type":"batch","data":{"messages":"not a list"}}',
                b'{"type":"batch","data":{"messages":[1]}}'):
        with pytest.raises(StreamError, match="batch"):
            parse_server_frame(bad)


def test_server_frame_that_is_no_envelope_raises_stream_error() -> None:
    with pytest.raises(StreamError):
        parse_server_frame(b'{"nope": 1}')

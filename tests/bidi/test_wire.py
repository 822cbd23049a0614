"""The wire mapping, table-driven: every SDK output event out, every client input in."""

from __future__ import annotations

import base64
from typing import Any, get_args

import msgspec
import pytest
from strands.bidi.models import ConnectionTimeoutError
from strands.bidi.types import AudioDelta
from strands.bidi.types import events as sdk
from strands.types.events import ToolResultEvent
from strands.types.media import ImageBlock
from strands.types.tools import ToolResult, ToolUse

from nbstream.protocol import ErrorCode, Message, StreamError, encode
from nbstream.strands.wire import InputLimits, decode_input, encode_event, event_type

PCM = bytes(range(256)) * 4
PCM64 = base64.b64encode(PCM).decode()
USE: ToolUse = {"toolUseId": "t1", "name": "calculator", "input": {"expression": "6*7"}}
RESULT: ToolResult = {"toolUseId": "t1", "status": "success", "content": [{"text": "42"}]}

OUTPUTS: list[tuple[Any, str, dict[str, Any]]] = [
    (sdk.BidiConnectionStartEvent("c1", "m"), "bidi_connection_start",
     {"connection_id": "c1", "model": "m"}),
    (sdk.BidiConnectionRestartEvent("timeout", ConnectionTimeoutError("limit"), True),
     "bidi_connection_restart",
     {"reason": "timeout", "turn_interrupted": True,
      "timeout_error": {"error": "ConnectionTimeoutError", "message": "limit"}}),
    (sdk.BidiConnectionWarningEvent(10.0), "bidi_connection_warning", {"time_left_s": 10.0}),
    (sdk.BidiResponseStartEvent("r1"), "bidi_response_start", {"response_id": "r1"}),
    (sdk.BidiAudioStartEvent("a1"), "bidi_audio_start", {"content_id": "a1"}),
    (sdk.BidiAudioDeltaEvent(PCM64, "pcm", 16_000, 1, "a1"), "bidi_audio_delta",
     {"audio": PCM64, "format": "pcm", "sample_rate": 16_000, "channels": 1,
      "content_id": "a1"}),
    (sdk.BidiAudioStopEvent("a1"), "bidi_audio_stop", {"content_id": "a1"}),
    (sdk.BidiTextStartEvent("x1"), "bidi_text_start", {"content_id": "x1"}),
    (sdk.BidiTextDeltaEvent("Hi", "x1"), "bidi_text_delta", {"delta": "Hi", "content_id": "x1"}),
    (sdk.BidiTextStopEvent("x1"), "bidi_text_stop", {"content_id": "x1"}),
    (sdk.BidiTextBlockEvent("Hi", "x1"), "bidi_text_block", {"text": "Hi", "content_id": "x1"}),
    (sdk.BidiReasoningStartEvent("y1"), "bidi_reasoning_start", {"content_id": "y1"}),
    (sdk.BidiReasoningDeltaEvent("hm", "y1"), "bidi_reasoning_delta",
     {"delta": "hm", "content_id": "y1"}),
    (sdk.BidiReasoningStopEvent("y1"), "bidi_reasoning_stop", {"content_id": "y1"}),
    (sdk.BidiReasoningBlockEvent("hm", "y1"), "bidi_reasoning_block",
     {"text": "hm", "content_id": "y1"}),
    (sdk.BidiTranscriptStartEvent("user", "u1"), "bidi_transcript_start",
     {"role": "user", "content_id": "u1"}),
    (sdk.BidiTranscriptDeltaEvent("hello", "assistant", "u2"), "bidi_transcript_delta",
     {"delta": "hello", "role": "assistant", "content_id": "u2"}),
    (sdk.BidiTranscriptStopEvent("user", "u1"), "bidi_transcript_stop",
     {"role": "user", "content_id": "u1"}),
    (sdk.BidiTranscriptBlockEvent("hello", "user", "u1"), "bidi_transcript_block",
     {"transcript": "hello", "role": "user", "content_id": "u1"}),
    (sdk.BidiBargeInEvent(), "bidi_barge_in", {}),
    (sdk.BidiResponseStopEvent("r1"), "bidi_response_stop", {"response_id": "r1"}),
    (sdk.BidiUsageEvent(3, 5, 8, output_token_details={"audio": 4}), "bidi_usage",
     {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8,
      "output_token_details": {"audio": 4}}),
    (sdk.BidiConnectionStopEvent("c1", "user_request"), "bidi_connection_stop",
     {"connection_id": "c1", "reason": "user_request"}),
    (sdk.BidiToolUseBlocksEvent([USE]), "bidi_tool_use_blocks", {"tool_uses": [USE]}),
    # What BidiAgent.receive() adds around tools (the others, tool_stream and
    # tool_result_message, come from real runs in test_streams):
    (ToolResultEvent(RESULT), "tool_result", {"tool_result": RESULT}),
    # Bytes anywhere become base64 text:
    (ToolResultEvent({**RESULT, "content": [{"image": {"format": "png",
                                                       "source": {"bytes": b"\x89PNG"}}}]}),
     "tool_result", {"tool_result": {**RESULT, "content": [
         {"image": {"format": "png", "source": {"bytes": "iVBORw=="}}}]}}),
]


@pytest.mark.parametrize(("event", "kind", "data"), OUTPUTS,
                         ids=[f"{i}-{row[1]}" for i, row in enumerate(OUTPUTS)])
def test_each_event_is_one_envelope_of_its_own_type(event: Any, kind: str,
                                                    data: dict[str, Any]) -> None:
    outgoing = encode_event(event)
    assert outgoing.message.type == kind
    assert outgoing.message.data == data
    assert outgoing.audio is None
    wire = msgspec.json.decode(encode(outgoing.message))  # really JSON, and unchanged by it
    assert wire["type"] == kind and wire["data"] == data


def test_the_table_covers_every_output_event_of_the_installed_sdk() -> None:
    """Fails loudly when a new strands-agents release adds or renames an output event."""
    covered = {type(event) for event, _, _ in OUTPUTS}
    missing = set(get_args(sdk.BidiOutputEvent)) - covered
    assert not missing, f"map and document these new SDK events: {missing}"


def test_binary_mode_moves_audio_out_of_the_envelope() -> None:
    outgoing = encode_event(sdk.BidiAudioDeltaEvent(PCM64, "pcm", 24_000, 1, "a1"),
                            binary_audio=True)
    assert outgoing.audio == PCM
    assert outgoing.message.data == {"format": "pcm", "sample_rate": 24_000, "channels": 1,
                                     "content_id": "a1", "audio_bytes": len(PCM),
                                     "binary": True}
    other = encode_event(sdk.BidiTextDeltaEvent("Hi", "x1"), binary_audio=True)
    assert other.audio is None and other.message.data["delta"] == "Hi"


def test_event_type_names_classes_without_a_type_field() -> None:
    class OddThingEvent(dict[str, Any]):
        pass

    assert event_type(OddThingEvent()) == "odd_thing"
    assert encode_event(object()).message.type == "object"
    deep: Any = []
    for _ in range(100):
        deep = [deep]
    assert "…" in msgspec.json.encode(encode_event({"type": "x", "deep": deep}).message).decode()


LIMITS = InputLimits(max_text_chars=10, max_audio_bytes=2_048, max_image_bytes=64)
PNG = base64.b64encode(b"\x89PNG fake").decode()

GOOD: list[tuple[Message, Any]] = [
    (Message("bidi_text_input", {"text": "hello"}), "hello"),
    (Message("bidi_audio_input", {"audio": PCM64}), AudioDelta(format="pcm",
                                                                source={"bytes": PCM})),
    (Message("bidi_audio_input", {"audio": PCM64, "format": "pcm", "sample_rate": 16_000,
                                  "channels": 1}),
     AudioDelta(format="pcm", source={"bytes": PCM})),
    (Message("bidi_image_input", {"image": PNG, "format": "png"}),
     ImageBlock(format="png", source={"bytes": b"\x89PNG fake"})),
]


@pytest.mark.parametrize(("message", "expected"), GOOD, ids=lambda v: getattr(v, "type", ""))
def test_good_inputs_become_what_the_agent_takes(message: Message, expected: Any) -> None:
    assert decode_input(message, limits=LIMITS) == expected


BAD: list[tuple[Any, str]] = [
    (Message("chat", {"text": "hi"}), "unknown message type 'chat'"),
    (Message("bidi_text_input", "hi"), "needs its fields in a data object"),
    (Message("bidi_text_input", {"text": ""}), "non-empty string"),
    (Message("bidi_text_input", {"text": 42}), "non-empty string"),
    (Message("bidi_text_input", {"text": "x" * 11}), "text too long: 11 characters"),
    (Message("bidi_audio_input", {"audio": "not base64!"}), "not valid base64"),
    (Message("bidi_audio_input", {"audio": "QUJ"}), "not valid base64"),
    (Message("bidi_audio_input", {"audio": None}), "must be base64 text"),
    (Message("bidi_audio_input", {"audio": base64.b64encode(bytes(4_096)).decode()}),
     "audio too large"),
    (Message("bidi_audio_input", {"audio": base64.b64encode(b"abc").decode()}),
     "whole 16-bit samples"),
    (Message("bidi_audio_input", {"audio": PCM64, "format": "midi"}), "unknown audio format"),
    (Message("bidi_audio_input", {"audio": PCM64, "sample_rate": 8_000}),
     "sample_rate 8000 is not what the model takes (16000)"),
    (Message("bidi_audio_input", {"audio": PCM64, "channels": 2}), "channels 2"),
    (Message("bidi_audio_input", {"audio": PCM64, "channels": True}), "channels True"),
    (Message("bidi_image_input", {"image": PNG, "format": "bmp"}), "image format must be"),
    (Message("bidi_image_input", {"image": base64.b64encode(bytes(100)).decode(),
                                  "format": "png"}), "image too large"),
    (Message("bidi_image_input", {"format": "png"}), "data.image must be base64 text"),
]


@pytest.mark.parametrize(("message", "reason"), BAD, ids=[r for _, r in BAD])
def test_bad_inputs_become_structured_errors(message: Message, reason: str) -> None:
    error = decode_input(message, limits=LIMITS)
    assert isinstance(error, StreamError)
    assert error.code == ErrorCode.INVALID_MESSAGE and error.recoverable
    assert error.close_code is None  # the connection goes on
    assert reason in error.message
    assert error.details["type"] == message.type and error.details["id"] == message.id


def test_binary_audio_payloads_are_checked_like_base64_ones() -> None:
    envelope = Message("bidi_audio_input", {"format": "pcm", "sample_rate": 16_000})
    assert decode_input(envelope, payload=PCM, limits=LIMITS) == AudioDelta(
        format="pcm", source={"bytes": PCM})
    too_big = decode_input(envelope, payload=bytes(4_096), limits=LIMITS)
    assert isinstance(too_big, StreamError) and too_big.details["size"] == 4_096
    empty = decode_input(envelope, payload=b"", limits=LIMITS)
    assert isinstance(empty, StreamError) and "empty" in empty.message

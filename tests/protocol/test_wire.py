"""The protocol seam: the built-in wire protocols frame by frame, and a protocol
defined here, served and spoken over real sockets without touching server or client."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import pytest

import nbstream
from nbstream import wire
from nbstream.protocol import ErrorCode, Message, Session, StreamError
from nbstream.wire import Encoded, JsonProtocol, RawProtocol, TextProtocol, WireProtocol
from tests.conftest import TIMEOUT, ServerFactory


@pytest.mark.parametrize(("frame", "type_", "data"), [
    ('{"type": "quote", "p": 1}', "quote", {"type": "quote", "p": 1}),
    ('{"p": 1}', "message", {"p": 1}),
    ("[1, 2]", "message", [1, 2]),
    ('{"type": 5}', "message", {"type": 5}),
    ("not json {", "text", "not json {"),
    (b"\x00\x01", "binary", b"\x00\x01"),
])
def test_json_decodes_anything_without_raising(frame: str | bytes, type_: str,
                                               data: Any) -> None:
    for message in (JsonProtocol().decode_request(frame), *JsonProtocol().decode_replies(frame)):
        assert (message.type, message.data) == (type_, data)


def test_json_takes_the_type_of_any_dict_it_sends() -> None:
    sent = JsonProtocol().to_message(OrderedDict(type="quote", symbol="ABC"))
    assert (sent.type, sent.data) == ("quote", {"type": "quote", "symbol": "ABC"})


def test_json_type_key_may_be_a_function() -> None:
    protocol = JsonProtocol(type_key=lambda v: v.get("op") if isinstance(v, dict) else None)
    assert protocol.decode_request('{"op": "sub"}').type == "sub"


@pytest.mark.parametrize(("protocol", "item", "encoded"), [
    (JsonProtocol(), {"a": 1}, Encoded(b'{"a":1}', True)),
    (JsonProtocol(), [1], Encoded(b"[1]", True)),
    (JsonProtocol(), "hi", Encoded(b"hi", True)),
    (JsonProtocol(), b"\x01", Encoded(b"\x01", False)),
    (TextProtocol(), 3.5, Encoded(b"3.5", True)),
    (TextProtocol(), {"a": 1}, Encoded(b'{"a":1}', True)),
    (RawProtocol(), "é", Encoded("é".encode(), True)),
    (RawProtocol(), b"\xff", Encoded(b"\xff", False)),
])
def test_values_go_out_as_they_are_given(protocol: WireProtocol, item: Any,
                                         encoded: Encoded) -> None:
    assert protocol.encode(protocol.to_message(item)) == encoded
    assert protocol.frame(item) == encoded  # the load test's path, no message built


@pytest.mark.parametrize("name", ["nbstream", "json", "text", "raw"])
def test_a_protocol_sending_str_as_text_frames_every_str_as_given(name: str) -> None:
    protocol = wire.create(name)
    strings = ["", "hi", "é ☃", '{"type": "chat"}', "[1]", "3", "null", "{i}"]
    framed = [protocol.frame(s) for s in strings]
    as_given = [Encoded(s.encode(), True) for s in strings]
    assert protocol.sends_str_as_text == (framed == as_given)
    assert protocol.sends_str_as_text == (name != "nbstream")


def test_an_encoded_frame_reads_and_unpacks_like_the_pair_it_was() -> None:
    encoded = RawProtocol().frame("hi")
    data, text = encoded
    assert (data, text) == (encoded.data, encoded.text) == (b"hi", True)
    assert encoded == Encoded(b"hi", True) != Encoded(b"hi", False)
    assert hash(encoded) == hash(Encoded(b"hi", True))


@pytest.mark.parametrize(("protocol", "item"), [
    (RawProtocol(), {"a": 1}),
    (RawProtocol(), 3),
    (JsonProtocol(), object()),
    (JsonProtocol(), {"a": object()}),
    (JsonProtocol(), [1, object()]),
    (wire.EnvelopeProtocol(), 3),
])
def test_what_a_protocol_cannot_send_is_a_type_error_naming_it(protocol: WireProtocol,
                                                                item: Any) -> None:
    with pytest.raises(TypeError, match=protocol.name):
        protocol.to_message(item)
    with pytest.raises(TypeError, match=protocol.name):
        protocol.frame(item)


@pytest.mark.parametrize(("given", "kept_id", "kept_stamp"), [
    ({}, None, None),
    ({"id": "mine"}, "mine", None),
    ({"timestamp": "then"}, None, "then"),
    ({"id": "mine", "timestamp": "then"}, "mine", "then"),
    ({"id": 7, "timestamp": None}, None, None),
])
def test_an_envelope_dict_keeps_a_given_id_and_timestamp_else_gets_fresh_ones(
        given: dict[str, Any], kept_id: str | None, kept_stamp: str | None) -> None:
    protocol = wire.EnvelopeProtocol()
    first, second = (protocol.to_message({"type": "chat", "data": {"text": "hi"}, **given})
                     for _ in range(2))
    assert (first.type, first.data) == ("chat", {"text": "hi"})
    if kept_id is None:
        assert isinstance(first.id, str) and first.id != second.id
    else:
        assert first.id == second.id == kept_id
    if kept_stamp is None:
        assert first.timestamp.endswith("+00:00")
    else:
        assert first.timestamp == kept_stamp


def test_only_the_envelope_reports_errors_in_band_as_an_envelope() -> None:
    error = StreamError(ErrorCode.RATE_LIMITED)
    assert wire.EnvelopeProtocol().error_message(error).type == "error"
    assert JsonProtocol().error_message(error).data["code"] == "RATE_LIMITED"
    assert TextProtocol().error_message(error) is None
    assert RawProtocol().error_message(error) is None


def test_unknown_protocols_are_named() -> None:
    with pytest.raises(ValueError, match="nbstream, json, text, raw"):
        wire.create("msgpack")
    with pytest.raises(ValueError, match="protocol='msgpack'"):
        nbstream.ServerOptions(protocol="msgpack")


class LineProtocol(WireProtocol):
    """A protocol of this test only: ``"TYPE words"`` lines; a reply ends with ``"."``."""

    name = "line"
    ends_replies = True

    def decode_request(self, frame: str | bytes) -> Message | StreamError:
        if not isinstance(frame, str):
            return StreamError(ErrorCode.INVALID_MESSAGE, "lines are text")
        kind, _, words = frame.partition(" ")
        return Message(kind, words)

    def decode_replies(self, frame: str | bytes) -> list[Message]:
        message = self.decode_request(frame)
        assert isinstance(message, Message)
        return [message]

    def to_message(self, item: Any) -> Message:
        if isinstance(item, Message):
            return item
        if isinstance(item, str):
            kind, _, words = item.partition(" ")
            return Message(kind, words)
        raise TypeError("the line protocol sends str")

    def encode(self, message: Message) -> Encoded:
        return Encoded(f"{message.type} {message.data}".encode(), True)

    def end_of_reply(self, request: Message) -> Message:
        return Message("end", ".")


async def shout(message: Message, session: Session) -> AsyncIterator[str]:
    for word in str(message.data).split():
        yield f"word {word.upper()}"


async def test_a_protocol_defined_here_is_served_and_spoken_without_touching_internals(
    start_server: ServerFactory,
) -> None:
    protocol = LineProtocol()
    server = await start_server(shout, protocol=protocol)
    client = await nbstream.aconnect(server.url, protocol=protocol)
    replies = await client.arequest("say hello there", until=lambda m: m.type == "end",
                                    timeout=TIMEOUT)
    assert [(m.type, m.data) for m in replies] == [
        ("word", "HELLO"), ("word", "THERE"), ("end", ".")]
    await client.aclose()

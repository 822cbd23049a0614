"""Protocols for servers nbstream did not write: ``json``, ``text`` and ``raw``.

None of them has an end-of-reply marker, in-band heartbeats (liveness uses WebSocket
pings) or a resume step. Decoding never fails: whatever a peer sends arrives as a
message. What a handler yields or a client sends goes out as it is given: a dict or a
list as JSON text, a str as a text frame, bytes as a binary frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from nbstream.protocol import Message, StreamError
from nbstream.wire.base import Encoded, WireProtocol

TEXT = "text"
"""The type of a text frame's message (``data`` is the str)."""
BINARY = "binary"
"""The type of a binary frame's message (``data`` is the bytes)."""
JSON_DEFAULT_TYPE = "message"
"""The type of a JSON value that names none."""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def _as_text(frame: str | bytes) -> Message:
    if isinstance(frame, str):
        return Message(TEXT, frame)
    return Message(BINARY, bytes(frame))


class RawProtocol(WireProtocol):
    """Frames exactly as received and sent: ``Message("text", str)``,
    ``Message("binary", bytes)``; nothing is ever added in band."""

    name = "raw"
    sends_str_as_text = True

    def decode_request(self, frame: str | bytes) -> Message:
        return _as_text(frame)

    def decode_replies(self, frame: str | bytes) -> list[Message]:
        # _as_text inline: a reply is decoded on every request of a scenario.
        if type(frame) is str:
            return [Message(TEXT, frame)]
        return [_as_text(frame)]

    def to_message(self, item: Any) -> Message:
        if isinstance(item, Message):
            return item
        if isinstance(item, str | bytes | bytearray | memoryview):
            return _as_text(item if isinstance(item, str) else bytes(item))
        raise TypeError(f"the {self.name} protocol sends str (text frames) and bytes "
                        f"(binary frames), not {type(item).__name__}")

    def frame(self, item: Any) -> Encoded:
        kind = type(item)
        if kind is str:
            return Encoded(item.encode(), True)
        if kind is bytes:
            return Encoded(item, False)
        return super().frame(item)

    def encode(self, message: Message) -> Encoded:
        data = message.data
        if isinstance(data, str):
            return Encoded(data.encode(), True)
        if isinstance(data, bytes | bytearray | memoryview):
            return Encoded(bytes(data), False)
        return Encoded(_encoder.encode(data), True)


class TextProtocol(RawProtocol):
    """Text frames as ``Message("text", str)``; also sends numbers (as their text) and
    dicts or lists (as JSON text)."""

    name = "text"

    def to_message(self, item: Any) -> Message:
        if isinstance(item, dict | list):
            return Message(TEXT, _encoder.encode(item).decode())
        if isinstance(item, int | float) and not isinstance(item, bool):
            return Message(TEXT, str(item))
        return super().to_message(item)


TypeKey = str | Callable[[Any], str | None]
"""The key whose value is a JSON message's type, or a function of the decoded value."""


class JsonProtocol(RawProtocol):
    """Each text frame is a JSON value; ``Message.type`` comes from ``type_key``.

    A frame that is not JSON arrives as type ``"text"``, a binary frame as
    ``"binary"``; neither raises. Errors the server reports in band are JSON objects
    ``{"type": "error", "code": ..., "message": ..., ...}``.
    """

    name = "json"

    def __init__(self, type_key: TypeKey = "type") -> None:
        self._key = type_key
        self._key_function = type_key if callable(type_key) else None

    @property
    def type_key(self) -> TypeKey:
        """The key holding a message's type, or the function of the value that names it."""
        return self._key

    def type_of(self, value: Any) -> str:
        """The message type of a decoded JSON value."""
        function = self._key_function
        if function is not None:
            found = function(value)
        else:
            found = value.get(self._key) if isinstance(value, dict) else None
        return found if isinstance(found, str) and found else JSON_DEFAULT_TYPE

    def _decode(self, frame: str | bytes) -> Message:
        if not isinstance(frame, str):
            return Message(BINARY, bytes(frame))
        try:
            value = _decoder.decode(frame)
        except (msgspec.DecodeError, RecursionError):
            return Message(TEXT, frame)
        return Message(self.type_of(value), value)

    def decode_request(self, frame: str | bytes) -> Message:
        return self._decode(frame)

    def decode_replies(self, frame: str | bytes) -> list[Message]:
        return [self._decode(frame)]

    def to_message(self, item: Any) -> Message:
        if isinstance(item, Message):
            return item
        if isinstance(item, str | bytes | bytearray | memoryview):
            return _as_text(item if isinstance(item, str) else bytes(item))
        try:
            _encoder.encode(item)
        except TypeError:
            raise TypeError(f"the json protocol cannot send {type(item).__name__}: send "
                            "JSON-compatible values, str or bytes") from None
        return Message(self.type_of(item), item)

    def frame(self, item: Any) -> Encoded:
        """A dict or a list goes out as its JSON text, encoded once and no message
        built (a scenario's ``user.request(dict)``); anything else as :meth:`to_message`
        says."""
        kind = type(item)
        if kind is dict or kind is list:
            try:
                return Encoded(_encoder.encode(item), True)
            except TypeError:
                pass  # to_message names what cannot be sent
        return super().frame(item)

    def encode(self, message: Message) -> Encoded:
        """A JSON value as its JSON text, a JSON string included; a ``text`` message (a
        frame that was not JSON) and bytes go out as they are."""
        if isinstance(message.data, str) and message.type != TEXT:
            return Encoded(_encoder.encode(message.data), True)
        return super().encode(message)

    def error_message(self, error: StreamError) -> Message:
        return Message("error", {"type": "error", **error.to_dict()})

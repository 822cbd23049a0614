"""nbstream's own protocol: ``{type, data, id, timestamp}`` envelopes (docs/protocol.md).

Replies end with ``end``, errors travel as ``error`` envelopes, heartbeats are
``ping``/``pong`` envelopes, and sessions have positions, a ``welcome`` and a resume
step, announced by the ``nbstream.v1`` subprotocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nbstream.protocol import (
    SUBPROTOCOL,
    Message,
    MessageType,
    StreamError,
    encode,
    new_id,
    parse_client_frame,
    parse_server_frame,
    utc_timestamp,
)
from nbstream.protocol.connection import Incoming
from nbstream.wire.base import Encoded, WireProtocol

_CONTROL: dict[str, Incoming] = {
    MessageType.PING: Incoming.PING,
    MessageType.PONG: Incoming.PONG,
    MessageType.AUTH: Incoming.AUTH,
}


BINARY = "binary"
"""The type of a binary frame's message (``data`` is the bytes)."""

_CONTROL_TYPES = frozenset({MessageType.PING, MessageType.PONG, MessageType.AUTH})


class EnvelopeProtocol(WireProtocol):
    """The nbstream envelope.

    ``requests`` are the types a client may send besides ``ping``, ``pong`` and
    ``auth``: ``{"chat"}`` for reply handlers, None (any type) for conversation
    handlers. With ``binary``, binary frames travel too, as ``Message("binary",
    bytes)`` both ways: outside the session's stream (no position, no replay on
    resume), for payloads such as audio that base64 would inflate.
    """

    name = "nbstream"
    subprotocol = SUBPROTOCOL
    in_band_heartbeat = True
    resumable = True
    ends_replies = True
    control_types: Mapping[str, Incoming] = _CONTROL

    def __init__(self, requests: frozenset[str] | None = frozenset({MessageType.CHAT}), *,
                 binary: bool = False) -> None:
        self.requests = requests
        self.binary = binary
        self._allowed = None if requests is None else _CONTROL_TYPES | requests

    def decode_request(self, frame: str | bytes) -> Message | StreamError:
        if self.binary and not isinstance(frame, str):
            return Message(BINARY, bytes(frame))
        return parse_client_frame(frame, self._allowed)

    def to_message(self, item: Any) -> Message:
        """A Message as is; a str becomes ``content``; a dict with ``type`` an envelope."""
        if isinstance(item, dict):  # first: a scenario's request, on its data path
            kind = item.get("type")
            if isinstance(kind, str):  # no comprehension, no **kwargs
                if "id" not in item and "timestamp" not in item:  # the usual request
                    return Message(kind, item.get("data"), new_id(), utc_timestamp())
                given_id, stamp = item.get("id"), item.get("timestamp")
                return Message(kind, item.get("data"),
                               given_id if isinstance(given_id, str) else new_id(),
                               stamp if isinstance(stamp, str) else utc_timestamp())
        elif isinstance(item, Message):
            return item
        elif isinstance(item, str):
            return Message(MessageType.CONTENT, {"text": item})
        elif self.binary and isinstance(item, bytes | bytearray | memoryview):
            return Message(BINARY, bytes(item))
        raise TypeError(
            f"the nbstream protocol cannot send {type(item).__name__}; send a Message, "
            "a str, or a dict with 'type' and 'data'"
        )

    def encode(self, message: Message) -> Encoded:
        if message.type == BINARY and isinstance(message.data, bytes):
            return Encoded(message.data, False)
        return Encoded(encode(message), True)

    def in_stream(self, message: Message) -> bool:
        """Binary frames go outside the session's stream (no position, no replay)."""
        return not (message.type == BINARY and isinstance(message.data, bytes))

    def end_of_reply(self, request: Message) -> Message:
        return Message(MessageType.END, {"reply_to": request.id})

    def error_message(self, error: StreamError) -> Message:
        return Message(MessageType.ERROR, error.to_dict())

    def shutdown_notice(self, grace_period: float) -> Message:
        return Message(MessageType.SERVER_SHUTDOWN,
                       {"reason": "server shutting down", "grace_period": grace_period})

    def decode_replies(self, frame: str | bytes) -> list[Message]:
        if self.binary and not isinstance(frame, str):
            return [Message(BINARY, bytes(frame))]
        return parse_server_frame(frame)

    @property
    def text_as_bytes(self) -> bool:
        """A client may read text frames as UTF-8 bytes (cheaper): this protocol tells
        text from binary only with ``binary``."""
        return not self.binary

    def ping(self, ping_id: str) -> Message:
        return Message(MessageType.PING, {}, ping_id)

    def pong(self, ping: Message) -> Message:
        return Message(MessageType.PONG, {"ping_id": ping.id})

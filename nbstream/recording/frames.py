"""What a recording holds: one :class:`Frame` per WebSocket frame, and a
:class:`SessionInfo` per connection; and how a :class:`~nbstream.events.FlowEvent`
becomes a frame. Pure: no sockets, no clock.
"""

from __future__ import annotations

from typing import Any

import msgspec

from nbstream.events import BINARY, CLOSE, PING, PONG, TEXT, Direction, FlowEvent
from nbstream.protocol import ErrorCode, StreamError
from nbstream.redact import redact_text, redact_url
from nbstream.wire import WireProtocol
from nbstream.wire import create as create_protocol

OPCODES = {TEXT: "text", BINARY: "binary", CLOSE: "close", PING: "ping", PONG: "pong"}
"""The WebSocket opcodes a recording keeps (RFC 6455 section 5.2)."""
DATA_OPCODES = frozenset({TEXT, BINARY})
"""Opcodes of data frames: the ones replayed, diffed and written to HAR files."""

COLUMNS = ["time", "at", "session", "direction", "opcode", "type", "size", "payload",
           "close_code"]
"""The columns of :attr:`Recording.frame`, in order."""


class Frame(msgspec.Struct, frozen=True):
    """One frame of a recording.

    ``payload`` is the frame's content as it went on the wire: ``str`` for text
    frames, ``bytes`` for binary and control frames, the close reason (``str``) for a
    close; None when the source did not see it.
    """

    at: float
    """Wall-clock time (epoch seconds) when the source saw the frame."""
    session: str
    direction: Direction | None
    """``c2s`` (client to server), ``s2c``, or None for a close whose sender is unknown."""
    opcode: int
    type: str | None = None
    """The message's type as the source's protocol names it (``chat``, ``content``)."""
    size: int = 0
    payload: str | bytes | None = None
    close_code: int | None = None

    @property
    def is_data(self) -> bool:
        """True for text and binary frames (what applications send)."""
        return self.opcode in DATA_OPCODES


class SessionInfo(msgspec.Struct):
    """One connection of a recording: where it went and how it ended."""

    session: str
    url: str | None = None
    subprotocol: str | None = None
    user: str | None = None
    opened: float | None = None
    """Wall-clock time (epoch seconds) the connection opened, when seen."""
    closed: float | None = None
    close_code: int | None = None
    close_reason: str | None = None


def frame_of(event: FlowEvent, session: str, *, protocol: WireProtocol | None = None,
             namer: TypeNamer | None = None) -> Frame | None:
    """The frame ``event`` reports, or None for events that are not frames
    (``open``, ``heartbeat``, ``refused``, ``fault``).

    ``protocol`` (the source's) encodes a message whose event carries no payload (one
    message of a batch); ``namer`` names the type from the payload (replays through a
    raw client), where the event's own message type is used otherwise.
    """
    if event.kind == "close":
        detail = event.detail or {}
        code = detail.get("code")
        reason = detail.get("reason")
        return Frame(event.at, session, event.direction, CLOSE,
                     close_code=code if isinstance(code, int) else None,
                     payload=reason if isinstance(reason, str) else None)
    if event.kind not in ("in", "out"):
        return None
    payload = event.payload
    message = event.message
    opcode = event.opcode
    if opcode is None:
        opcode = BINARY if isinstance(payload, bytes) else TEXT
    if payload is None and message is not None and protocol is not None:
        encoded = protocol.encode(message)
        payload = encoded.data.decode(errors="replace") if encoded.text else encoded.data
    if namer is not None and opcode in DATA_OPCODES:
        kind = namer.type_of(payload)
    else:
        kind = message.type if message is not None else None
    return Frame(event.at, session, event.direction, opcode, kind,
                 event.size or _size(payload), payload)


def _size(payload: str | bytes | None) -> int:
    if payload is None:
        return 0
    return len(payload.encode() if isinstance(payload, str) else payload)


class TypeNamer:
    """Names a frame's message type from its payload, as a wire protocol would."""

    def __init__(self, protocol: str) -> None:
        self.protocol = create_protocol(protocol if protocol != "nbstream" else "json")

    def type_of(self, payload: str | bytes | None) -> str | None:
        """The type of the message ``payload`` carries (``text``/``binary`` without one)."""
        if payload is None:
            return None
        return self.protocol.decode_replies(payload)[0].type


def redacted(frame: Frame) -> Frame:
    """``frame`` with secrets in its text payload replaced (see nbstream.redact)."""
    if isinstance(frame.payload, str):
        cleaned = redact_text(frame.payload)
        if cleaned != frame.payload:
            return msgspec.structs.replace(frame, payload=cleaned)
    return frame


def redacted_session(info: SessionInfo) -> SessionInfo:
    """``info`` with a ``?token=`` or a password in its URL replaced."""
    if info.url is None:
        return info
    return msgspec.structs.replace(info, url=redact_url(info.url))


def invalid(text: str, /, **details: Any) -> StreamError:
    """The error for a recording or HAR file that cannot be read (INVALID_RECORDING)."""
    return StreamError(ErrorCode.INVALID_RECORDING, text, details=details)

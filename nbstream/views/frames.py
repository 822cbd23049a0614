"""How one WebSocket frame reads in a FlowView: its type, preview and detail text.

Every protocol's frames show here: nbstream envelopes and JSON values (compact in the
preview, the frame's own text in the detail, which the view indents), plain text,
binary payloads (their size, then hex and base64) and the control frames ping, pong
(with the heartbeat's round trip) and close (code and reason). Called when a row is
made, never on the data path.
"""

from __future__ import annotations

import base64
import json
from typing import Any, NamedTuple

import msgspec

from nbstream.events import BINARY, CLOSE, CONTROL_TYPES, FlowEvent
from nbstream.protocol import CloseCode, encode

MAX_DETAIL = 16_000
"""Characters of a frame's detail kept; longer ones are cut."""
PREVIEW = 80
"""Characters of the preview column."""
HEX_PREVIEW = 16
"""Bytes of a binary payload shown in hex in the preview."""
HEX_DETAIL = 1024
"""Bytes of a binary payload shown in the detail's hex dump (base64 shows more)."""
INVALID = "invalid"
"""The type shown for a frame that its protocol rejected."""
FRAME = "frame"
"""The type shown for a frame whose content the source did not keep."""

_CODE_NAMES = {int(code): code.name.lower().replace("_", " ") for code in CloseCode}
_CODE_NAMES.update({1002: "protocol error", 1003: "unsupported data", 1005: "no status",
                    1006: "abnormal closure", 1007: "invalid payload", 1010: "missing extension",
                    1012: "service restart"})


class FrameText(NamedTuple):
    """What a row shows of one frame."""

    type: str
    size: int
    preview: str
    detail: str
    """The whole text for the detail pane (JSON is indented when shown)."""


def cut(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def close_text(code: Any, reason: Any) -> str:
    """``1001 going away: server shutting down``; a close without a code says so."""
    if not isinstance(code, int):
        return f"no close code{': ' + str(reason) if reason else ''}"
    name = _CODE_NAMES.get(code, "")
    text = f"{code} {name}".strip()
    return f"{text}: {reason}" if reason else text


def rtt_text(rtt: Any) -> str:
    """A heartbeat round trip in milliseconds, like ``rtt 0.42 ms``."""
    return f"rtt {rtt * 1000:.2f} ms" if isinstance(rtt, int | float) else ""


def hex_bytes(data: bytes, limit: int) -> str:
    """``00 ff 10 …``: the first ``limit`` bytes in hex."""
    shown = data[:limit].hex(" ")
    return shown + (" …" if len(data) > limit else "")


def binary_detail(data: bytes) -> str:
    """A binary payload for the detail pane: its size, a hex dump, then base64."""
    lines = [f"binary, {len(data):,} bytes", "", "hex:"]
    for offset in range(0, min(len(data), HEX_DETAIL), 16):
        lines.append(f"{offset:06x}  {data[offset:offset + 16].hex(' ')}")
    if len(data) > HEX_DETAIL:
        lines.append(f"… ({len(data) - HEX_DETAIL:,} more bytes)")
    lines += ["", "base64:", base64.b64encode(data[:MAX_DETAIL]).decode()]
    return cut("\n".join(lines), MAX_DETAIL)


def compact(data: Any) -> str:
    """``data`` as compact JSON (its repr when it is not JSON-encodable)."""
    try:
        return msgspec.json.encode(data).decode()
    except TypeError:
        return repr(data)


def control_frame(event: FlowEvent) -> FrameText:
    """A ping, pong or close frame."""
    detail = event.detail or {}
    payload = event.payload if isinstance(event.payload, bytes) else (
        event.payload.encode() if isinstance(event.payload, str) else b"")
    kind = CONTROL_TYPES[event.opcode or 0]
    if event.opcode == CLOSE:
        preview = close_text(detail.get("code"), detail.get("reason"))
    else:
        preview = " ".join(p for p in (rtt_text(detail.get("rtt")),
                                       hex_bytes(payload, HEX_PREVIEW)) if p)
    facts = {"opcode": event.opcode, "payload_hex": payload.hex(), **detail}
    return FrameText(kind, event.size or len(payload), preview,
                     json.dumps(facts, default=str))


def data_frame(event: FlowEvent) -> FrameText:
    """A text or binary frame: its message as the protocol read it, and its payload."""
    message, payload = event.message, event.payload
    if message is None:
        detail = event.detail or {}
        if "error" in detail or "raw" in detail:  # rejected by its protocol
            raw = detail.get("raw", payload or b"")
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            return FrameText(INVALID, event.size, cut(text, PREVIEW), cut(text, MAX_DETAIL))
        if isinstance(payload, bytes):
            return FrameText("binary", event.size or len(payload),
                             f"{len(payload):,} B  {hex_bytes(payload, HEX_PREVIEW)}",
                             binary_detail(payload))
        if isinstance(payload, str):
            return FrameText("text", event.size or len(payload.encode()),
                             cut(payload, PREVIEW), cut(payload, MAX_DETAIL))
        return FrameText(FRAME, event.size, "", "")
    data = message.data
    if isinstance(data, bytes):
        return FrameText(str(message.type), event.size or len(data),
                         f"{len(data):,} B  {hex_bytes(data, HEX_PREVIEW)}", binary_detail(data))
    if isinstance(data, str) and (payload is None or payload == data):
        return FrameText(str(message.type), event.size or len(data.encode()),
                         cut(data, PREVIEW), cut(data, MAX_DETAIL))
    if isinstance(payload, str):
        whole = payload
    elif isinstance(payload, bytes) and event.opcode == BINARY:
        return FrameText(str(message.type), event.size or len(payload),
                         f"{len(payload):,} B  {hex_bytes(payload, HEX_PREVIEW)}",
                         binary_detail(payload))
    else:  # no payload kept (a batch's share): the envelope as nbstream encodes it
        whole = encode(message).decode()
    return FrameText(str(message.type), event.size or len(whole.encode()),
                     cut(compact(data), PREVIEW), cut(whole, MAX_DETAIL))


def frame_type(event: FlowEvent) -> str:
    """The type a frame event counts as (cheap: :meth:`FlowLog.fold` calls it)."""
    message = event.message
    if message is not None:
        return str(message.type)
    opcode = event.opcode
    if opcode in CONTROL_TYPES:
        return CONTROL_TYPES[opcode]
    detail = event.detail
    if detail is not None and ("error" in detail or "raw" in detail):
        return INVALID
    payload = event.payload
    if isinstance(payload, bytes):
        return "binary"
    return "text" if isinstance(payload, str) else FRAME


def frame_text(event: FlowEvent) -> FrameText:
    """What a row shows of a frame event (``in``/``out``, a direction set)."""
    if event.opcode in CONTROL_TYPES:
        return control_frame(event)
    return data_frame(event)

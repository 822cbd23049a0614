"""Strands bidi events on nbstream's wire, both ways, as pure functions.

Out: :func:`encode_event` turns each event the agent yields into one envelope whose
``type`` is the event's own ``type`` (``bidi_transcript_delta``, ``bidi_audio_delta``,
``tool_result``...) and whose ``data`` is the event's other fields, made JSON-safe.
Audio stays base64 as the SDK has it, or, with ``binary_audio=True``, is returned as
raw bytes to send in one binary frame right after its envelope.

In: :func:`decode_input` turns a client envelope (``bidi_text_input``,
``bidi_audio_input``, ``bidi_image_input``) into what ``BidiAgent.send`` takes, a
``bidi_config`` into an :class:`OutputConfig`, and anything else into a
:class:`~nbstream.StreamError` to send back: never an exception, whatever the peer
sent. See docs/strands.md for the table.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, get_args

from strands.bidi.types import AudioDelta
from strands.types.media import AudioFormat, ImageBlock, ImageFormat

from nbstream.protocol import ErrorCode, Message, StreamError

TEXT_INPUT = "bidi_text_input"
AUDIO_INPUT = "bidi_audio_input"
IMAGE_INPUT = "bidi_image_input"
INPUT_TYPES = (TEXT_INPUT, AUDIO_INPUT, IMAGE_INPUT)
"""The envelope types that carry a client's input to an agent."""
CONFIG = "bidi_config"
"""The envelope type a client sends to choose how it receives audio."""
CLIENT_TYPES = (*INPUT_TYPES, CONFIG)
"""Every envelope type a client may send to an agent."""
AUDIO_FORMATS: tuple[str, ...] = get_args(AudioFormat)
IMAGE_FORMATS: tuple[str, ...] = get_args(ImageFormat)
MAX_DEPTH = 32
"""Nesting beyond this is cut when making event fields JSON-safe."""


class Outgoing(NamedTuple):
    """One event on the wire: its envelope, and in binary mode its audio for a binary frame."""

    message: Message
    audio: bytes | None = None


def event_type(event: Any) -> str:
    """The envelope type of an event: its ``type`` field, else its class in snake case.

    ``ToolResultMessageEvent`` (which has no ``type``) becomes ``tool_result_message``.
    """
    if isinstance(event, Mapping) and isinstance(event.get("type"), str):
        return str(event["type"])
    name = type(event).__name__.removesuffix("Event") or "event"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` as plain JSON data: bytes as base64 text, errors as their type and
    message, anything unknown as its ``str``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if depth >= MAX_DEPTH:
        return "…"
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(key): json_safe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item, depth + 1) for item in value]
    if isinstance(value, BaseException):
        return {"error": type(value).__name__, "message": str(value)}
    return str(value)


def encode_event(event: Any, *, binary_audio: bool = False) -> Outgoing:
    """The envelope for one event the agent yields (see the module docstring).

    In binary mode a ``bidi_audio_delta`` loses its base64 ``audio`` field and gains
    ``audio_bytes`` (the size) and ``binary: true``; its audio is in
    :attr:`Outgoing.audio`.
    """
    kind = event_type(event)
    fields = ({key: item for key, item in event.items() if key != "type"}
              if isinstance(event, Mapping) else {"value": event})
    data = json_safe(fields)
    if binary_audio and kind == "bidi_audio_delta" and isinstance(data.get("audio"), str):
        try:
            audio = base64.b64decode(data.pop("audio"), validate=True)
        except (binascii.Error, ValueError):
            return Outgoing(Message(kind, {**data, "audio": None}))
        data.update(audio_bytes=len(audio), binary=True)
        return Outgoing(Message(kind, data), audio)
    return Outgoing(Message(kind, data))


@dataclass(frozen=True)
class InputLimits:
    """What a client's inputs may be. ``serve_agent`` takes the audio settings from the
    model (``get_audio_config()["input"]``) when it has them.

    Attributes:
        max_text_chars: Longest text input.
        max_audio_bytes: Largest audio chunk, decoded (the default is about 8 s of
            16 kHz mono PCM); send long audio as several chunks.
        max_image_bytes: Largest image, decoded.
        sample_rate: The audio input rate the model expects; other rates are refused.
        channels: The audio channels the model expects.
        audio_format: The audio format assumed when a chunk does not say.
    """

    max_text_chars: int = 16_384
    max_audio_bytes: int = 256 * 1024
    max_image_bytes: int = 4 * 1024 * 1024
    sample_rate: int = 16_000
    channels: int = 1
    audio_format: str = "pcm"


DEFAULT_LIMITS = InputLimits()
AgentInput = str | AudioDelta | ImageBlock
"""What :func:`decode_input` hands to ``BidiAgent.send``."""


@dataclass(frozen=True)
class OutputConfig:
    """What a client asks of the agent's output with a ``bidi_config`` envelope.

    Attributes:
        binary_audio: Audio deltas as binary frames (each right after its envelope,
            which then has ``audio_bytes`` instead of ``audio``): a third fewer bytes
            and no base64, but binary frames are not replayed after a resume.
    """

    binary_audio: bool = False


def expects_binary(message: Message) -> bool:
    """Whether ``message`` is a ``bidi_audio_input`` whose audio comes in the next
    binary frame (it has no ``data.audio``)."""
    return (message.type == AUDIO_INPUT and isinstance(message.data, Mapping)
            and "audio" not in message.data)


def invalid(message: Message, reason: str, **details: Any) -> StreamError:
    """INVALID_MESSAGE (recoverable) for ``message``, naming its type and id and ``reason``."""
    return StreamError(ErrorCode.INVALID_MESSAGE, reason,
                       details={"type": message.type, "id": message.id, **details})


def _base64(message: Message, text: Any, name: str, limit: int) -> bytes | StreamError:
    """Decode a base64 field, refusing it before decoding when it is too large."""
    if not isinstance(text, str) or not text:
        return invalid(message, f"data.{name} must be base64 text")
    if len(text) > (limit + 2) // 3 * 4:
        return invalid(message, f"{name} too large: about {len(text) * 3 // 4} bytes, "
                        f"at most {limit}; send it in smaller chunks",
                        limit=limit, size=len(text) * 3 // 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        return invalid(message, f"data.{name} is not valid base64: {exc}")


def _audio(message: Message, data: Mapping[str, Any], payload: bytes | None,
           limits: InputLimits) -> AudioDelta | StreamError:
    audio_format = data.get("format", limits.audio_format)
    if audio_format not in AUDIO_FORMATS:
        return invalid(message, f"unknown audio format {audio_format!r}",
                        allowed=list(AUDIO_FORMATS))
    for name, expected in (("sample_rate", limits.sample_rate), ("channels", limits.channels)):
        value = data.get(name, expected)
        if value != expected or isinstance(value, bool):
            return invalid(message, f"{name} {value!r} is not what the model takes "
                            f"({expected}): convert the audio before sending",
                            expected={name: expected})
    if payload is None:
        decoded = _base64(message, data.get("audio"), "audio", limits.max_audio_bytes)
        if isinstance(decoded, StreamError):
            return decoded
        payload = decoded
    elif len(payload) > limits.max_audio_bytes:
        return invalid(message, f"audio too large: {len(payload)} bytes, at most "
                        f"{limits.max_audio_bytes}; send it in smaller chunks",
                        limit=limits.max_audio_bytes, size=len(payload))
    if not payload:
        return invalid(message, "empty audio chunk")
    if audio_format == "pcm" and len(payload) % (2 * limits.channels):
        return invalid(message, "PCM audio must be whole 16-bit samples "
                        f"({2 * limits.channels} bytes per frame)")
    return AudioDelta(format=audio_format, source={"bytes": payload})


def _config(message: Message, data: Mapping[str, Any]) -> OutputConfig | StreamError:
    unknown = sorted(set(data) - {"binary_audio"})
    if unknown:
        return invalid(message, f"bidi_config knows only binary_audio, not {unknown}")
    binary_audio = data.get("binary_audio", False)
    if not isinstance(binary_audio, bool):
        return invalid(message, "data.binary_audio must be true or false")
    return OutputConfig(binary_audio=binary_audio)


def missing_frame(message: Message) -> StreamError:
    """The error for a ``bidi_audio_input`` announcing a binary frame that did not follow."""
    return invalid(message, "a bidi_audio_input without data.audio must be followed by "
                            "its audio in one binary frame")


def decode_input(message: Message, *, payload: bytes | None = None,
                 limits: InputLimits = DEFAULT_LIMITS
                 ) -> AgentInput | OutputConfig | StreamError:
    """What ``BidiAgent.send`` should get for a client envelope, or the error to send back.

    Args:
        message: The client's envelope.
        payload: The binary frame that came with a ``bidi_audio_input`` whose audio is
            sent raw instead of as base64 ``data.audio``.
        limits: Sizes and the audio format the agent accepts.

    Returns:
        A string (text), an ``AudioDelta`` or an ``ImageBlock``; an
        :class:`OutputConfig` for a ``bidi_config``; or a ``StreamError``
        (INVALID_MESSAGE, recoverable: the connection goes on) saying what to fix.
    """
    if message.type not in CLIENT_TYPES:
        return invalid(message, f"unknown message type {message.type!r}",
                        allowed=list(CLIENT_TYPES))
    data = message.data
    if not isinstance(data, Mapping):
        return invalid(message, f"{message.type} needs its fields in a data object")
    if message.type == CONFIG:
        return _config(message, data)
    if message.type == TEXT_INPUT:
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            return invalid(message, "bidi_text_input needs data.text, a non-empty string")
        if len(text) > limits.max_text_chars:
            return invalid(message, f"text too long: {len(text)} characters, at most "
                            f"{limits.max_text_chars}", limit=limits.max_text_chars)
        return text
    if message.type == AUDIO_INPUT:
        return _audio(message, data, payload, limits)
    image_format = data.get("format")
    if image_format not in IMAGE_FORMATS:
        return invalid(message, f"image format must be one of {list(IMAGE_FORMATS)}",
                        allowed=list(IMAGE_FORMATS))
    image = _base64(message, data.get("image"), "image", limits.max_image_bytes)
    if isinstance(image, StreamError):
        return image
    return ImageBlock(format=image_format, source={"bytes": image})

"""Reading one direction of a proxied WebSocket connection: the HTTP head, then frames.

This is the one module of nbstream that parses WebSocket frames itself, and the
only one that uses ``websockets.frames.Frame.parse`` (documented in its source,
not in websockets' reference pages). :data:`TESTED_WEBSOCKETS` says which major
versions it was tested with; ``tests/faults/test_frames.py`` fails loudly if the
installed websockets parses differently.

Every frame is kept as the exact bytes that arrived, so an untouched message leaves
the proxy byte for byte as it came. A stream the proxy cannot parse (a frame it
rejects, one larger than :data:`MAX_FRAME`, an HTTP head over :data:`MAX_HEAD`) is
passed on as plain bytes from then on, and TCP-level faults still apply to it.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Generator
from urllib.parse import parse_qs, urlsplit

import msgspec
from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.frames import Frame, Opcode
from websockets.version import version as websockets_version

from nbstream.faults.units import FrameSpan, Unit, UnitKind, Way
from nbstream.protocol import Message

logger = logging.getLogger(__name__)

TESTED_WEBSOCKETS = range(14, 18)
"""websockets major versions whose ``Frame.parse`` this module was tested with."""
MAX_FRAME = 64 * 2**20
"""Payload bytes of the largest frame (and fragmented message) the proxy parses."""
MAX_HEAD = 64 * 1024
"""Bytes of the largest HTTP head the proxy reads before passing bytes on unparsed."""

_major = int(websockets_version.split(".")[0])
if _major not in TESTED_WEBSOCKETS:  # pragma: no cover - depends on the installation
    logger.warning("nbstream's fault proxy was tested with websockets %d-%d, not %s; "
                   "run tests/faults/test_frames.py", TESTED_WEBSOCKETS.start,
                   TESTED_WEBSOCKETS.stop - 1, websockets_version)

_CONTROL = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})
_envelope = msgspec.json.Decoder(Message)


class NotFrames(Exception):
    """The bytes are not WebSocket frames the proxy can read; ``rest`` were not used."""

    def __init__(self, reason: str, rest: bytes) -> None:
        super().__init__(reason)
        self.rest = rest


class FrameReader:
    """Splits a byte stream into frames with websockets' parser, keeping their bytes."""

    def __init__(self, mask: bool, max_size: int = MAX_FRAME) -> None:
        self._mask = mask
        self._max_size = max_size
        self._buffer = bytearray()
        self._pos = 0
        self._start = 0
        self._done: list[tuple[Frame, bytes, int]] = []
        self._parser = self._parse()
        next(self._parser)

    def _read_exact(self, n: int) -> Generator[None, None, bytes]:
        while len(self._buffer) - self._pos < n:
            yield
        data = bytes(self._buffer[self._pos:self._pos + n])
        self._pos += n
        return data

    def _parse(self) -> Generator[None, None, None]:
        while True:
            self._start = self._pos
            frame = yield from Frame.parse(self._read_exact, mask=self._mask,
                                           max_size=self._max_size)
            raw = bytes(self._buffer[self._start:self._pos])
            self._done.append((frame, raw, len(raw) - len(frame.data)))

    def feed(self, data: bytes) -> list[tuple[Frame, bytes, int]]:
        """The frames completed by ``data``: each with its exact bytes and header length.

        Raises:
            NotFrames: with the bytes not yet passed on, when the stream is not frames.
        """
        self._buffer += data
        try:
            next(self._parser)
        except (ProtocolError, PayloadTooBig) as exc:
            rest = bytes(self._buffer[self._start:])
            self._buffer.clear()
            raise NotFrames(str(exc), rest) from None
        if self._start:
            del self._buffer[:self._start]
            self._pos -= self._start
            self._start = 0
        done, self._done = self._done, []
        return done


class Phase(enum.Enum):
    """Where a :class:`StreamReader` is in its stream."""

    HEAD = "head"
    WAITING = "waiting"
    """Upward only: the request was read; bytes wait for the server's answer."""
    FRAMES = "frames"
    RAW = "raw"


class StreamReader:
    """One direction of a connection turned into units: the HTTP head, then messages.

    Upward, the request's ``Sec-WebSocket-Extensions`` header is removed, so that no
    compression is negotiated through the proxy and every message can be read (and
    dropped without breaking a compression context). Call :meth:`upgrade` on the
    upward reader once the downward one has read the server's answer.
    """

    def __init__(self, way: Way) -> None:
        self.way = way
        self.phase = Phase.HEAD
        self.query: dict[str, list[str]] = {}
        """The request's query parameters (upward reader)."""
        self.status: int | None = None
        """The response's HTTP status (downward reader); 101 means frames follow."""
        self._head = bytearray()
        self._waiting = bytearray()
        self._frames: FrameReader | None = None
        self._fragments: list[tuple[Frame, bytes, int]] = []
        self._fragment_bytes = 0
        self._index = 0

    def feed(self, data: bytes) -> list[Unit]:
        """The units ``data`` completes, in order."""
        if self.phase is Phase.FRAMES:
            return self._read_frames(data)
        if self.phase is Phase.RAW:
            return [Unit(UnitKind.RAW, data)] if data else []
        if self.phase is Phase.WAITING:
            self._waiting += data
            return []
        return self._read_head(data)

    def upgrade(self, upgraded: bool) -> list[Unit]:
        """The server answered (upward reader): frames follow, or plain bytes do."""
        if self.phase is not Phase.WAITING:
            return []
        self._begin(upgraded)
        waiting, self._waiting = bytes(self._waiting), bytearray()
        return self.feed(waiting) if waiting else []

    def _begin(self, frames: bool) -> None:
        if frames:
            self.phase = Phase.FRAMES
            self._frames = FrameReader(mask=self.way == "up")
        else:
            self.phase = Phase.RAW

    def _read_head(self, data: bytes) -> list[Unit]:
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) <= MAX_HEAD:
                return []
            logger.warning("proxy: an HTTP head over %d bytes; passing bytes on unread",
                           MAX_HEAD)
            self.phase = Phase.RAW
            head, self._head = bytes(self._head), bytearray()
            return [Unit(UnitKind.RAW, head)]
        head, rest = bytes(self._head[:end + 4]), bytes(self._head[end + 4:])
        self._head = bytearray()
        if self.way == "up":
            head = self._request(head)
            self.phase = Phase.WAITING
        else:
            self.status = _status(head)
            self._begin(self.status == 101)
        return [Unit(UnitKind.RAW, head), *self.feed(rest)] if rest else [
            Unit(UnitKind.RAW, head)]

    def _request(self, head: bytes) -> bytes:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) >= 2:
            self.query = parse_qs(urlsplit(parts[1].decode("latin-1")).query)
        kept = [line for line in lines
                if not line.lower().startswith(b"sec-websocket-extensions:")]
        return b"\r\n".join(kept)

    def _read_frames(self, data: bytes) -> list[Unit]:
        assert self._frames is not None
        try:
            parsed = self._frames.feed(data)
        except NotFrames as exc:
            logger.warning("proxy (%s): %s; passing this direction on as plain bytes",
                           self.way, exc)
            flushed = self._flush_fragments()
            self.phase, self._frames = Phase.RAW, None
            return [*flushed, Unit(UnitKind.RAW, exc.rest)] if exc.rest else flushed
        units: list[Unit] = []
        for frame, raw, header in parsed:
            if frame.opcode in _CONTROL:
                units.append(Unit(UnitKind.CONTROL, raw, int(frame.opcode), bytes(frame.data),
                                  spans=(FrameSpan(0, header, len(frame.data)),)))
                continue
            if frame.opcode is not Opcode.CONT and self._fragments:
                units.extend(self._flush_fragments())  # a broken sequence: the peer judges
            self._fragments.append((frame, raw, header))
            self._fragment_bytes += len(frame.data)
            if frame.fin or self._fragment_bytes > MAX_FRAME:
                units.extend(self._flush_fragments())
        return units

    def _flush_fragments(self) -> list[Unit]:
        if not self._fragments:
            return []
        fragments, self._fragments, self._fragment_bytes = self._fragments, [], 0
        spans, start = [], 0
        for frame, raw, header in fragments:
            spans.append(FrameSpan(start, header, len(frame.data)))
            start += len(raw)
        unit = Unit(UnitKind.MESSAGE, b"".join(raw for _, raw, _ in fragments),
                    int(fragments[0][0].opcode), b"".join(f.data for f, _, _ in fragments),
                    self._index, tuple(spans))
        self._index += 1
        return [unit]


def _status(head: bytes) -> int | None:
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def decode_unit(unit: Unit) -> Message | str | bytes:
    """What a message says: an nbstream envelope if it is one, else its text or bytes.

    A ``batch`` envelope stays one ``Message`` of type ``batch``. The result is cached
    on the unit, so predicates and events decode a message once.
    """
    if unit.decoded is not None:
        decoded: Message | str | bytes = unit.decoded
        return decoded
    if unit.opcode == Opcode.TEXT:
        try:
            decoded = _envelope.decode(unit.payload)
        except (msgspec.DecodeError, RecursionError):
            try:
                decoded = unit.payload.decode()
            except UnicodeDecodeError:
                decoded = unit.payload
    else:
        decoded = unit.payload
    unit.decoded = decoded
    return decoded


def payload_of(unit: Unit) -> str | bytes:
    """A message's payload as it went on the wire: text as ``str`` when it is UTF-8."""
    if unit.opcode == Opcode.TEXT:
        try:
            return unit.payload.decode()
        except UnicodeDecodeError:
            pass
    return unit.payload

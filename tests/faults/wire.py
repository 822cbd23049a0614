"""Bytes as they travel through a proxy, and a fake clock to drive its core with."""

from __future__ import annotations

import random
import struct

from nbstream.faults.pipe import Link, Pipe
from nbstream.faults.units import Item, Unit, UnitKind
from nbstream.faults.vocabulary import Fault, make_fault

REQUEST = (b"GET /ws?session_id=s1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")
RESPONSE = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
MASK = b"\x37\xfa\x21\x3d"


def frame(payload: bytes | str, *, opcode: int = 1, fin: bool = True,
          mask: bytes | None = None) -> bytes:
    """One frame, built by hand from RFC 6455 section 5.2 (not with websockets)."""
    data = payload.encode() if isinstance(payload, str) else payload
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask is not None else 0
    if len(data) < 126:
        head += bytes([bit | len(data)])
    elif len(data) < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", len(data))
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", len(data))
    if mask is None:
        return head + data
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def envelope(kind: str, text: str = "", **data: object) -> str:
    """An nbstream envelope as JSON text."""
    import json

    return json.dumps({"type": kind, "data": {"text": text, **data}, "id": "x",
                       "timestamp": "2026-01-01T00:00:00.000+00:00"})


def fault(name: str, direction: str = "down", probability: float = 1.0,
          **params: object) -> Fault:
    """A checked fault, as ``proxy.add`` makes it; ids count per name (``drop-1``, ...)."""
    number = _numbers[name] = _numbers.get(name, 0) + 1
    return make_fault(f"{name}-{number}", name, direction, probability, params)


_numbers: dict[str, int] = {}


def raw(data: bytes) -> list[Unit]:
    """Bytes as a reader passes on bytes it does not parse."""
    return [Unit(UnitKind.RAW, data)]


def open_link(seed: int = 1) -> Link:
    """A link whose handshake went through (request up, 101 down), at time 0."""
    link = Link(1, random.Random(seed))
    link.received("up", REQUEST, 0.0)
    link.received("down", RESPONSE, 0.0)
    link.pipes["up"].poll(0.0)
    link.pipes["down"].poll(0.0)
    return link


class Driver:
    """A fake clock for a pipe: push at a time, then run from deadline to deadline.

    ``out`` collects what the pipe gave out, each with the time it came out.
    """

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.out: list[tuple[float, Item]] = []
        self.now = 0.0

    def run(self, until: float = 1e9) -> list[tuple[float, Item]]:
        """Advance to ``until``, collecting what comes out; returns everything so far."""
        for _ in range(100_000):
            due = self.pipe.deadline()
            if due is None or due > until:
                self.now = max(self.now, min(until, 1e9))
                return self.out
            self.now = max(self.now, due)
            self.out.extend((self.now, item) for item in self.pipe.poll(self.now))
        raise AssertionError("the pipe never ran dry")

    def push(self, at: float, units: list[Unit]) -> None:
        """Units arriving at ``at`` (after whatever was due before)."""
        self.run(at)
        self.now = at
        self.pipe.push(units, at)
        self.out.extend((at, item) for item in self.pipe.poll(at))

    def finish(self, at: float) -> None:
        """The sender ends its stream at ``at``."""
        self.run(at)
        self.now = at
        self.pipe.finish(at)
        self.out.extend((at, item) for item in self.pipe.poll(at))

    def data(self) -> bytes:
        """The bytes given out so far, joined."""
        return b"".join(item for _, item in self.out if isinstance(item, bytes))

"""Reading frames with websockets' parser: the fence around Frame.parse, and the readers.

If these fail after a websockets upgrade, nbstream/faults/frames.py must follow the
new parser before the proxy can be trusted again.
"""

from __future__ import annotations

import pytest
from websockets.version import version as websockets_version

from nbstream.faults.frames import (
    MAX_HEAD,
    TESTED_WEBSOCKETS,
    FrameReader,
    NotFrames,
    Phase,
    StreamReader,
    decode_unit,
)
from nbstream.faults.units import UnitKind
from nbstream.protocol import Message
from tests.faults.wire import MASK, REQUEST, RESPONSE, envelope, frame


def test_the_installed_websockets_is_a_tested_one() -> None:
    assert int(websockets_version.split(".")[0]) in TESTED_WEBSOCKETS, (
        f"websockets {websockets_version} is not one the proxy's frame reader was tested "
        "with: check nbstream/faults/frames.py against its Frame.parse, then widen "
        "TESTED_WEBSOCKETS")


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536])
@pytest.mark.parametrize("mask", [None, MASK])
def test_frame_parse_keeps_every_frame_byte_for_byte(size: int, mask: bytes | None) -> None:
    wire = frame(b"x" * size, opcode=2, mask=mask)
    reader = FrameReader(mask=mask is not None)
    [(parsed, kept, header)] = reader.feed(wire)
    assert kept == wire
    assert bytes(parsed.data) == b"x" * size and parsed.fin and int(parsed.opcode) == 2
    assert header == len(wire) - size


def test_frames_split_anywhere_come_out_whole_and_in_order() -> None:
    wire = frame("hello") + frame(b"", opcode=9) + frame("world" * 50)
    reader = FrameReader(mask=False)
    got: list[bytes] = []
    for i in range(len(wire)):  # one byte at a time
        got.extend(kept for _, kept, _ in reader.feed(wire[i:i + 1]))
    assert b"".join(got) == wire and len(got) == 3


def test_what_is_not_frames_is_handed_back() -> None:
    reader = FrameReader(mask=False)
    reader.feed(frame("ok"))
    with pytest.raises(NotFrames) as caught:
        reader.feed(b"\xc1\x02hi")  # RSV1 set without an extension
    assert caught.value.rest == b"\xc1\x02hi"
    with pytest.raises(NotFrames):
        FrameReader(mask=True).feed(frame("unmasked from a client"))
    with pytest.raises(NotFrames):
        FrameReader(mask=False, max_size=10).feed(frame("x" * 11))


def test_the_request_loses_its_compression_offer_and_keeps_the_rest() -> None:
    reader = StreamReader("up")
    [unit] = reader.feed(REQUEST)
    assert unit.kind is UnitKind.RAW
    assert b"sec-websocket-extensions" not in unit.raw.lower()
    assert unit.raw == REQUEST.replace(
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n", b"")
    assert reader.query == {"session_id": ["s1"]}
    assert reader.phase is Phase.WAITING
    assert reader.feed(frame("early", mask=MASK)) == []  # held until the server answers
    [early] = reader.upgrade(True)
    assert early.kind is UnitKind.MESSAGE and early.payload == b"early"


def test_a_refused_handshake_passes_on_as_plain_bytes() -> None:
    down = StreamReader("down")
    head = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n"
    units = down.feed(head + b"no\n")
    assert down.status == 404 and down.phase is Phase.RAW
    assert [u.kind for u in units] == [UnitKind.RAW, UnitKind.RAW]
    assert b"".join(u.raw for u in units) == head + b"no\n"


def test_an_endless_head_is_passed_on_unread() -> None:
    down = StreamReader("down")
    units = down.feed(b"x" * (MAX_HEAD + 1))
    assert down.phase is Phase.RAW and units[0].raw == b"x" * (MAX_HEAD + 1)


def test_messages_are_numbered_and_fragments_joined() -> None:
    down = StreamReader("down")
    wire = (RESPONSE + frame(envelope("welcome")) + frame("par", fin=False)
            + frame(b"", opcode=9) + frame("ts", opcode=0) + frame(b"\x00\x01", opcode=2))
    units = down.feed(wire)
    kinds = [(u.kind, u.index) for u in units]
    assert kinds == [(UnitKind.RAW, -1), (UnitKind.MESSAGE, 0), (UnitKind.CONTROL, -1),
                     (UnitKind.MESSAGE, 1), (UnitKind.MESSAGE, 2)]
    joined = units[3]
    assert joined.payload == b"parts" and len(joined.spans) == 2
    assert joined.raw == frame("par", fin=False) + frame("ts", opcode=0)
    # nothing lost, nothing added; the ping goes on before the message it interrupted
    assert b"".join(u.raw for u in units) == (
        RESPONSE + frame(envelope("welcome")) + frame(b"", opcode=9) + frame("par", fin=False)
        + frame("ts", opcode=0) + frame(b"\x00\x01", opcode=2))


def test_decoding_gives_an_envelope_else_text_else_bytes() -> None:
    down = StreamReader("down")
    units = down.feed(RESPONSE + frame(envelope("content", "hi")) + frame("plain")
                      + frame(b"\xff\xfe") + frame(b"\x00", opcode=2))
    first = decode_unit(units[1])
    assert isinstance(first, Message) and first.type == "content" and first.text == "hi"
    assert decode_unit(units[2]) == "plain"
    assert decode_unit(units[3]) == b"\xff\xfe"
    assert decode_unit(units[4]) == b"\x00"

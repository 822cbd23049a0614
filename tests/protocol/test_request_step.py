"""Where a request's reply ends, for any protocol: the one rule nbstream.Client and the
load generator share (no sockets)."""

from __future__ import annotations

from nbstream import wire
from nbstream.protocol import Message
from nbstream.protocol.replies import ReplyStep, first_frame_ends, request_step


def test_until_decides_whatever_the_protocol() -> None:
    quote = Message("quote", {"price": 1})
    until = lambda m: m.type == "quote"  # noqa: E731
    for ends_replies in (True, False):
        assert request_step(quote, "r1", until, ends_replies) is ReplyStep.END
        assert request_step(Message("ack", {}), "r1", until, ends_replies) is ReplyStep.PART


def test_without_until_an_envelope_reply_ends_at_its_end() -> None:
    assert request_step(Message("content", {"reply_to": "r1"}), "r1", None, True) \
        is ReplyStep.PART
    assert request_step(Message("end", {"reply_to": "r1"}), "r1", None, True) is ReplyStep.END
    assert request_step(Message("end", {"reply_to": "r2"}), "r1", None, True) \
        is ReplyStep.OTHER
    error = Message("error", {"code": "RATE_LIMITED", "details": {"reply_to": "r1"}})
    assert request_step(error, "r1", None, True) is ReplyStep.FAILED


def test_without_until_any_other_protocol_ends_at_the_first_reply() -> None:
    for message in (Message("text", "hi"), Message("end", {"reply_to": "r2"}),
                    Message("error", {"code": "X"})):
        assert request_step(message, None, None, False) is ReplyStep.END


def test_which_protocols_let_any_first_frame_answer() -> None:
    answers = {name: first_frame_ends(p.ends_replies, p.in_band_heartbeat)
               for name in wire.NAMES for p in [wire.create(name)]}
    assert answers == {"nbstream": False, "json": True, "text": True, "raw": True}


def test_a_protocol_frames_what_a_client_sends_as_encode_of_to_message() -> None:
    values: list[object] = ["text", b"\x00\x01", {"type": "quote", "n": 1}, [1, 2], 7]
    for name in ("json", "text", "raw"):
        protocol = wire.create(name)
        for value in values:
            try:
                expected = protocol.encode(protocol.to_message(value))
            except TypeError:
                continue
            assert protocol.frame(value) == expected, (name, value)

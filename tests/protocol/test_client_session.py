"""The client's session core, with no sockets: positions, replay de-duplication, what
is buffered and sent again, and the reconnect decision."""

from __future__ import annotations

import pytest

from nbstream.protocol import ErrorCode, Message, MessageType, StreamError
from nbstream.protocol.client_session import ClientSessionCore, SendDecision


def welcomed(epoch: str = "e1", **data: object) -> ClientSessionCore:
    core = ClientSessionCore(send_buffer=2)
    core.welcomed({"session_id": "s1", "epoch": epoch, **data})
    return core


def stream(offset: int, epoch: str = "e1", kind: str = "content", **data: object) -> Message:
    return Message(kind, data, f"{epoch}:{offset}")


def chat(i: int) -> Message:
    return Message(MessageType.CHAT, {"text": str(i)}, f"c{i}")


def test_a_welcome_gives_the_position_before_the_first_message() -> None:
    core = welcomed()
    assert core.resume_params() == {"session_id": "s1", "last_id": "e1:-1"}
    core.received(stream(0))
    assert core.resume_params()["last_id"] == "e1:0"


def test_replayed_messages_already_seen_are_dropped_once() -> None:
    core = welcomed()
    for offset in range(3):
        assert core.received(stream(offset))
    core.resuming()
    assert [core.received(stream(o)) for o in range(5)] == [False, False, False, True, True]
    assert core.received(stream(2)) is True  # caught up: no more filtering


@pytest.mark.parametrize(("reconnecting", "tracked", "expected"), [
    (False, True, SendDecision.WRITE),
    (False, False, SendDecision.WRITE),
    (True, True, SendDecision.BUFFER),
    (True, False, SendDecision.BUFFER),
])
def test_what_a_send_does(reconnecting: bool, tracked: bool, expected: SendDecision) -> None:
    core = welcomed()
    core.reconnecting = reconnecting
    assert core.sending(chat(1), tracked=tracked) is expected


def test_heartbeats_are_dropped_while_reconnecting() -> None:
    core = welcomed()
    core.reconnecting = True
    pong = Message(MessageType.PONG, {"ping_id": "p1"}, "c9")
    assert core.sending(pong, tracked=False) is SendDecision.DROP
    core.write_failed(pong, tracked=False)
    assert core.buffered == {}


def test_messages_awaiting_no_reply_go_out_once_after_the_resume() -> None:
    """A conversation's inputs (no reply refers to them) wait for the resume in the
    order they were sent among requests, and are not sent again after a later one."""
    core = welcomed()
    core.send_buffer = 10
    said = Message("bidi_text_input", {"text": "hi"}, "i1")
    core.sending(said, tracked=False)
    core.write_failed(said, tracked=False)
    core.reconnecting = True
    core.sending(chat(2), tracked=True)
    core.sending(Message("bidi_text_input", {"text": "again"}, "i3"), tracked=False)
    outcome = core.resumed({"session_id": "s1", "epoch": "e1", "recovered": True},
                           abnormal=True)
    assert [m.id for m in outcome.resend] == ["i1", "c2", "i3"]
    assert list(core.unacked) == ["c2"] and core.untracked == set()
    again = core.resumed({"session_id": "s1", "epoch": "e1", "recovered": True},
                         abnormal=True)
    assert [m.id for m in again.resend] == ["c2"]


def test_the_buffer_is_bounded() -> None:
    core = welcomed()
    core.reconnecting = True
    assert [core.sending(chat(i), tracked=True) for i in range(3)] == [
        SendDecision.BUFFER, SendDecision.BUFFER, SendDecision.REFUSE]


def test_a_reply_end_or_error_acknowledges_its_request() -> None:
    core = welcomed()
    core.sending(chat(1), tracked=True)
    core.sending(chat(2), tracked=True)
    core.received(stream(0, kind="end", reply_to="c1"))
    error = StreamError(ErrorCode.RATE_LIMITED, details={"reply_to": "c2"})
    core.received(Message(MessageType.ERROR, error.to_dict(), "e1:1"))
    assert core.unacked == {}
    assert core.last_error == error


def test_a_failed_write_moves_the_request_to_the_buffer() -> None:
    core = welcomed()
    core.sending(chat(1), tracked=True)
    core.write_failed(chat(1), tracked=True)
    assert list(core.buffered) == ["c1"] and core.unacked == {}


def test_a_recovered_resume_sends_unanswered_then_buffered_requests_in_order() -> None:
    core = welcomed()
    core.sending(chat(1), tracked=True)
    core.reconnecting = True
    core.sending(chat(2), tracked=True)
    outcome = core.resumed({"session_id": "s1", "epoch": "e1", "recovered": True},
                           abnormal=True)
    assert outcome.recovered is True and outcome.error is None
    assert [m.id for m in outcome.resend] == ["c1", "c2"]
    assert list(core.unacked) == ["c1", "c2"] and not core.reconnecting


def test_a_failed_resume_reports_what_was_unanswered_and_starts_over() -> None:
    core = welcomed()
    core.received(stream(0))
    core.sending(chat(1), tracked=True)
    outcome = core.resumed({"session_id": "s1", "epoch": "e2", "recovered": False,
                            "reason": "expired"}, abnormal=True)
    assert outcome.recovered is False and outcome.resend == []
    assert outcome.error is not None and outcome.error.code == ErrorCode.RECOVERY_FAILED
    assert outcome.error.details["unanswered"] == ["c1"]
    assert core.resume_params()["last_id"] == "e2:-1"  # the new epoch, from its start


def test_nothing_lost_after_an_orderly_close_is_no_failure() -> None:
    core = welcomed()
    outcome = core.resumed({"session_id": "s1", "epoch": "e2", "recovered": False},
                           abnormal=False)
    assert outcome.error is None


def test_a_client_that_saw_nothing_yet_resumes_from_the_start() -> None:
    """Dropped before its first stream message: its position is the epoch's start,
    so the server replays from offset 0 instead of reporting a false failure."""
    core = welcomed()
    core.sending(chat(1), tracked=True)
    core.resuming()
    assert core.resume_params()["last_id"] == "e1:-1"
    outcome = core.resumed({"session_id": "s1", "epoch": "e1", "recovered": True,
                            "replayed": 2}, abnormal=True)
    assert outcome.error is None and [m.id for m in outcome.resend] == ["c1"]
    assert core.received(stream(0)) and core.received(stream(1))


@pytest.mark.parametrize(("code", "error", "expected"), [
    (1006, None, True),
    (1001, None, True),
    (1011, None, True),
    (4002, None, True),
    (1000, None, False),
    (1008, None, False),
    (4001, None, False),
    (None, None, True),
    (1011, ErrorCode.INTERNAL_ERROR, False),
    (1008, ErrorCode.UNAUTHORIZED, False),
])
def test_the_reconnect_decision(code: int | None, error: str | None, expected: bool) -> None:
    core = welcomed()
    if error is not None:
        core.last_error = StreamError(error)
    assert core.should_reconnect(code, can_reconnect=True) is expected
    assert core.should_reconnect(code, can_reconnect=False) is False


def test_the_last_close_the_server_sent_is_kept() -> None:
    core = welcomed()
    core.closed_by_server(1001, "server shutdown")
    core.closed_by_server(None, "")
    assert core.last_close == (1001, "server shutdown")

"""The closing policy, reply matching, resume plans, recent ids and backoff: the small
sans-I/O pieces both sides share, table by table."""

from __future__ import annotations

import pytest

from nbstream.protocol import (
    Backoff,
    BoundedHistory,
    ErrorCode,
    Message,
    MessageType,
    Position,
    RecentIds,
    StreamError,
    plan_resume,
)
from nbstream.protocol.closing import CLOSE_RULES, CloseCause, Fault, fault, resumable, rule_for
from nbstream.protocol.closing import session_outlives as outlives
from nbstream.protocol.replies import ReplyStep, reply_step, reply_to


@pytest.mark.parametrize(("code", "sent_by_us", "expected"), [
    (1000, True, Fault.NONE),
    (1006, False, Fault.NETWORK),
    (1008, True, Fault.REMOTE),   # we refused the peer's policy violation
    (1008, False, Fault.LOCAL),   # the peer refused ours
    (1011, True, Fault.LOCAL),    # our internal error
    (1011, False, Fault.REMOTE),
    (4002, True, Fault.REMOTE),   # the peer read too slowly
    (1009, False, Fault.LOCAL),   # we sent too much
])
def test_whose_fault(code: int, sent_by_us: bool, expected: Fault) -> None:
    assert fault(code, sent_by_us=sent_by_us) is expected


def test_every_rule_is_keyed_by_its_code_and_unknown_codes_are_final() -> None:
    assert all(code == rule.code for code, rule in CLOSE_RULES.items())
    assert not resumable(3999) and rule_for(3999).name == "application-defined"
    assert resumable(None)  # no close frame at all: the network died


@pytest.mark.parametrize(("code", "cause", "expected"), [
    (1006, None, True),
    (1000, None, False),
    (1011, CloseCause.HEARTBEAT_TIMEOUT, True),
    (1011, CloseCause.HANDLER_FAILED, False),
    (4002, CloseCause.SLOW_CONSUMER, True),
    (1001, CloseCause.SHUTDOWN, True),
    (4001, CloseCause.TAKEN_OVER, False),
    (1000, CloseCause.DISCONNECTED, False),
    (1008, CloseCause.UNAUTHORIZED, False),
])
def test_when_a_session_waits_for_its_client(code: int, cause: CloseCause | None,
                                             expected: bool) -> None:
    assert outlives(code, cause) is expected


def error(code: str, reply: str | None = None, recoverable: bool | None = None) -> Message:
    details = {"reply_to": reply} if reply else {}
    return Message(MessageType.ERROR,
                   StreamError(code, details=details, recoverable=recoverable).to_dict())


@pytest.mark.parametrize(("message", "expected"), [
    (Message("content", {"text": "a"}), ReplyStep.PART),
    (Message("content", {"reply_to": "r1"}), ReplyStep.PART),
    (Message("content", {"reply_to": "r2"}), ReplyStep.OTHER),
    (Message("end", {"reply_to": "r1"}), ReplyStep.END),
    (Message("end", {}), ReplyStep.END),
    (Message("end", {"reply_to": "r2"}), ReplyStep.OTHER),
    (Message("pong", {"ping_id": "r1"}), ReplyStep.END),
    (error(ErrorCode.RATE_LIMITED, "r1"), ReplyStep.FAILED),
    (error(ErrorCode.RATE_LIMITED, "r2"), ReplyStep.OTHER),
    (error(ErrorCode.RATE_LIMITED), ReplyStep.PART),
    (error(ErrorCode.TOO_MANY_CONNECTIONS), ReplyStep.FAILED),
    (error(ErrorCode.RECOVERY_FAILED), ReplyStep.FAILED),
    (Message("error", "not a dict"), ReplyStep.FAILED),
])
def test_reply_steps(message: Message, expected: ReplyStep) -> None:
    assert reply_step(message, "r1") is expected


def test_reply_to_reads_the_right_field_per_type() -> None:
    assert reply_to(Message("end", {"reply_to": "a"})) == "a"
    assert reply_to(error(ErrorCode.RATE_LIMITED, "b")) == "b"
    assert reply_to(Message("pong", {"ping_id": "c"})) == "c"
    assert reply_to(Message("end", {"reply_to": 3})) is None
    assert reply_to(Message("end", None)) is None


def history(count: int, max_messages: int = 100) -> BoundedHistory:
    h = BoundedHistory(max_messages, 10_000)
    for i in range(count):
        h.add(f"m{i}".encode())
    return h


@pytest.mark.parametrize(("seen", "recovered", "frames", "reason"), [
    (Position("e", -1), True, [b"m0", b"m1", b"m2"], ""),
    (Position("e", 0), True, [b"m1", b"m2"], ""),
    (Position("e", 2), True, [], ""),
    (Position("e", 3), False, [], "offset 3 was never sent"),
    (Position("x", 1), False, [], "epoch x is gone"),
])
def test_resume_plans(seen: Position, recovered: bool, frames: list[bytes],
                      reason: str) -> None:
    plan = plan_resume(history(3), "e", seen)
    assert (plan.recovered, plan.frames) == (recovered, frames)
    assert reason in plan.reason


def test_a_resume_past_the_history_window_says_what_fell_out() -> None:
    plan = plan_resume(history(10, max_messages=3), "e", Position("e", 2))
    assert not plan.recovered and "messages 3 to 6 fell out of the history" in plan.reason


@pytest.mark.parametrize(("text", "expected"), [
    ("e:5", Position("e", 5)),
    ("a:b:7", Position("a:b", 7)),
    ("e:-1", Position("e", -1)),
    ("e:-2", None),
    ("e:", None),
    (":5", None),
    ("nocolon", None),
    ("e:" + "9" * 19, None),
    (None, None),
])
def test_positions_parse(text: str | None, expected: Position | None) -> None:
    assert Position.parse(text) == expected
    if expected is not None:
        assert Position.parse(expected.to_id()) == expected


def test_recent_ids_drop_repeats_and_forget_the_oldest() -> None:
    ids = RecentIds(2)
    assert [ids.add(x) for x in ("a", "b", "a", "c", "a")] == [True, True, False, True, True]


def test_backoff_grows_to_its_cap_with_full_jitter() -> None:
    high = Backoff(base=0.1, cap=1.0, random=lambda: 1.0)
    assert [high.delay(n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert Backoff(random=lambda: 0.0).delay(9) == 0.0
    assert high.delay(10_000) == 1.0  # no overflow however long it tries

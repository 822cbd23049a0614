from datetime import UTC, datetime

import pytest

from nbstream.protocol import (
    Admission,
    BoundedHistory,
    ErrorCode,
    Heartbeat,
    HeartbeatAction,
    Session,
    TokenBucket,
)


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.1) == 0.0
    assert bucket.take(0.1) > 0


def test_heartbeat_pings_then_times_out_a_silent_peer() -> None:
    hb = Heartbeat(interval=30, timeout=10, now=0.0)
    assert hb.poll(29.9) is HeartbeatAction.NOTHING
    assert hb.poll(30.0) is HeartbeatAction.SEND_PING
    hb.ping_sent("p1", 30.0)
    assert hb.poll(40.0) is HeartbeatAction.NOTHING
    assert hb.poll(40.1) is HeartbeatAction.TIMED_OUT


def test_heartbeat_pong_measures_the_round_trip_and_reschedules() -> None:
    hb = Heartbeat(interval=30, timeout=10, now=0.0)
    hb.ping_sent("p1", 30.0)
    assert hb.pong("other", 30.1) is None
    assert hb.pong("p1", 30.25) == pytest.approx(0.25)
    assert hb.poll(59.9) is HeartbeatAction.NOTHING
    assert hb.poll(60.0) is HeartbeatAction.SEND_PING


def test_any_message_after_a_ping_proves_the_peer_alive() -> None:
    hb = Heartbeat(interval=30, timeout=10, now=0.0)
    hb.ping_sent("p1", 30.0)
    hb.seen(35.0)
    assert hb.poll(45.0) is HeartbeatAction.NOTHING
    assert hb.poll(60.0) is HeartbeatAction.SEND_PING


def test_admission_limits_total_and_per_user() -> None:
    admission = Admission(max_connections=3, max_connections_per_user=2)
    assert admission.admit("alice") is None
    assert admission.admit("alice") is None
    refused = admission.admit("alice")
    assert refused is not None and refused.code == ErrorCode.TOO_MANY_CONNECTIONS
    assert refused.close_code == 1013 and refused.details["scope"] == "user"
    assert admission.admit(None) is None
    full = admission.admit("bob")
    assert full is not None and full.details["scope"] == "server"
    admission.release("alice")
    assert admission.admit("bob") is None
    assert admission.count("alice") == 1 and admission.total == 3


def test_session_context_budget() -> None:
    session = Session("s", None, datetime.now(UTC), BoundedHistory(10, 1000),
                      context_max_messages=2)
    assert session.start_chat() is None
    assert session.start_chat() is None
    exhausted = session.start_chat()
    assert exhausted is not None and exhausted.code == ErrorCode.CONTEXT_EXHAUSTED

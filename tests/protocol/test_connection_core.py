"""The server's connection core, driven by a fake clock, with no sockets: every
transition of its table, every timer, every kind of message in every state."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from nbstream.protocol import ErrorCode, Message, MessageType, StreamError, TokenBucket
from nbstream.protocol.closing import CloseCause
from nbstream.protocol.connection import (
    TRANSITIONS,
    AnswerPing,
    Authenticate,
    Close,
    ConnState,
    Dispatch,
    IllegalTransition,
    Incoming,
    Limits,
    Ping,
    Report,
    RoundTrip,
    ServerConnectionCore,
    Trigger,
)

LIMITS = Limits(heartbeat_interval=30.0, heartbeat_timeout=10.0, auth_timeout=5.0,
                send_timeout=5.0)


def core(limits: Limits = LIMITS, now: float = 0.0, **kw: object) -> ServerConnectionCore:
    ids = (f"p{i}" for i in itertools.count())
    return ServerConnectionCore(limits, now, new_id=lambda: next(ids), **kw)  # type: ignore[arg-type]


def into(state: ConnState, c: ServerConnectionCore | None = None) -> ServerConnectionCore:
    """A core moved into ``state`` by the shortest legal path."""
    c = c or core()
    paths: dict[ConnState, list[Callable[[], object]]] = {
        ConnState.HANDSHAKE: [],
        ConnState.AUTHENTICATING: [lambda: c.require_auth(0.0)],
        ConnState.OPEN: [c.accept],
        ConnState.DRAINING: [c.accept, c.drain],
        ConnState.CLOSING: [c.accept, lambda: c.close(1000, "", CloseCause.DISCONNECTED)],
        ConnState.CLOSED: [c.accept, c.closed],
    }
    for step in paths[state]:
        step()
    assert c.state is state
    return c


CHAT = Message(MessageType.CHAT, {"text": "hi"}, "c1")
PING_IN = Message(MessageType.PING, {}, "q1")
AUTH = Message(MessageType.AUTH, {"token": "secret"}, "a1")


@pytest.mark.parametrize(("state", "trigger"),
                         list(itertools.product(ConnState, Trigger)))
def test_the_table_has_exactly_the_legal_moves(state: ConnState, trigger: Trigger) -> None:
    c = into(state)
    if (state, trigger) in TRANSITIONS:
        c._move(trigger)
        assert c.state is TRANSITIONS[state, trigger]
    else:
        with pytest.raises(IllegalTransition, match=trigger.value):
            c._move(trigger)


@pytest.mark.parametrize(("state", "kind", "message", "expected"), [
    (ConnState.OPEN, Incoming.REQUEST, CHAT, Dispatch),
    (ConnState.OPEN, Incoming.PING, PING_IN, AnswerPing),
    (ConnState.OPEN, Incoming.AUTH, AUTH, Report),
    (ConnState.DRAINING, Incoming.REQUEST, CHAT, Report),
    (ConnState.DRAINING, Incoming.PING, PING_IN, AnswerPing),
    (ConnState.AUTHENTICATING, Incoming.AUTH, AUTH, Authenticate),
    (ConnState.AUTHENTICATING, Incoming.REQUEST, CHAT, Close),
    (ConnState.CLOSING, Incoming.REQUEST, CHAT, None),
    (ConnState.CLOSED, Incoming.REQUEST, CHAT, None),
])
def test_each_message_in_each_state(state: ConnState, kind: Incoming, message: Message,
                                    expected: type | None) -> None:
    actions = into(state).receive(kind, message, 1.0)
    assert [type(a) for a in actions] == ([expected] if expected else [])


def test_a_request_while_draining_is_refused_with_its_id() -> None:
    (report,) = into(ConnState.DRAINING).receive(Incoming.REQUEST, CHAT, 1.0)
    assert isinstance(report, Report)
    assert report.error.code == ErrorCode.SHUTTING_DOWN
    assert report.error.details["reply_to"] == "c1"


def test_an_auth_message_carries_its_token_and_a_wrong_one_closes_1008() -> None:
    c = into(ConnState.AUTHENTICATING)
    (auth,) = c.receive(Incoming.AUTH, AUTH, 1.0)
    assert auth == Authenticate("secret")
    (close,) = c.refuse_credentials()
    assert isinstance(close, Close) and close.code == 1008
    assert close.cause is CloseCause.UNAUTHORIZED and close.error is not None
    assert c.state is ConnState.CLOSING


def test_the_auth_deadline() -> None:
    c = core()
    c.require_auth(10.0)
    assert c.tick(14.9) == ()
    (close,) = c.tick(15.0)
    assert isinstance(close, Close) and close.cause is CloseCause.AUTH_TIMEOUT
    assert close.error is not None and close.error.code == ErrorCode.UNAUTHORIZED
    assert c.tick(16.0) == ()  # closing: nothing more


def test_authenticated_clears_the_deadline() -> None:
    c = core()
    c.require_auth(0.0)
    c.authenticated()
    assert c.state is ConnState.OPEN
    assert c.tick(100.0) == (Ping("p0"),)  # the heartbeat, not the auth deadline


def test_heartbeat_pings_on_schedule_and_measures_the_round_trip() -> None:
    c = into(ConnState.OPEN)
    assert c.tick(29.9) == ()
    assert c.tick(30.0) == (Ping("p0"),)
    assert c.tick(31.0) == ()  # waiting for the pong
    pong = Message(MessageType.PONG, {"ping_id": "p0"})
    assert c.receive(Incoming.PONG, pong, 30.25) == (RoundTrip(0.25),)
    assert c.tick(59.9) == ()
    assert c.tick(60.0) == (Ping("p1"),)


def test_a_websocket_pong_counts_like_an_in_band_one() -> None:
    c = into(ConnState.OPEN)
    c.tick(30.0)
    assert c.pong("p0", 30.5) == (RoundTrip(0.5),)
    assert c.pong("p0", 30.6) == ()  # answered already


def test_a_silent_peer_is_closed_1011_and_a_talking_one_is_alive() -> None:
    silent = into(ConnState.OPEN)
    silent.tick(30.0)
    assert silent.tick(40.0) == ()
    (close,) = silent.tick(40.1)
    assert isinstance(close, Close) and (close.code, close.cause) == (
        1011, CloseCause.HEARTBEAT_TIMEOUT)

    talking = into(ConnState.OPEN)
    talking.tick(30.0)
    talking.receive(Incoming.REQUEST, CHAT, 35.0)  # any message proves it is alive
    assert talking.tick(40.1) == ()
    assert talking.tick(60.0) == (Ping("p1"),)


def test_a_stuck_socket_is_a_slow_consumer_after_send_timeout() -> None:
    c = into(ConnState.OPEN)
    assert c.tick(10.0, stuck_since=5.0) == ()
    (close,) = c.tick(10.1, stuck_since=5.0)
    assert isinstance(close, Close) and (close.code, close.cause) == (
        4002, CloseCause.SLOW_CONSUMER)


def test_rate_limits_per_connection_and_per_user() -> None:
    limits = Limits(30.0, 10.0, 5.0, 5.0, rate_limit=2.0, rate_burst=2.0)
    user = TokenBucket(1.0, 1.0, 0.0)
    c = core(limits, user_bucket=user)
    c.accept()
    assert c.receive(Incoming.REQUEST, CHAT, 0.0) == (Dispatch(CHAT),)
    (limited,) = c.receive(Incoming.REQUEST, CHAT, 0.0)
    assert isinstance(limited, Report)
    assert limited.error.code == ErrorCode.RATE_LIMITED
    assert limited.error.details["scope"] == "user"
    assert limited.error.details["reply_to"] == "c1"
    assert c.receive(Incoming.REQUEST, CHAT, 1.0) == (Dispatch(CHAT),)


def test_an_invalid_frame_is_reported_while_open_and_refused_while_authenticating() -> None:
    error = StreamError(ErrorCode.INVALID_MESSAGE, "bad")
    assert into(ConnState.OPEN).invalid(error, 1.0) == (Report(error),)
    (close,) = into(ConnState.AUTHENTICATING).invalid(error, 1.0)
    assert isinstance(close, Close) and close.code == 1008
    assert into(ConnState.CLOSING).invalid(error, 1.0) == ()


def test_close_is_decided_once() -> None:
    c = into(ConnState.OPEN)
    first = c.close(1001, "bye", CloseCause.SHUTDOWN)
    assert first == Close(1001, "bye", CloseCause.SHUTDOWN)
    assert c.close(1000, "again", CloseCause.DISCONNECTED) is None
    assert c.close_cause is CloseCause.SHUTDOWN
    c.closed()
    c.closed()  # safe twice
    assert c.state is ConnState.CLOSED

"""What a resume does on a node, and what a hand-over keeps: the rules, without sockets."""

from __future__ import annotations

import pytest

from nbstream.backplane import Claim, ClaimOutcome, Delivery, SessionRecord
from nbstream.backplane.handoff import (
    Adoption,
    LocalCopy,
    ResumeAction,
    answered_chats,
    decide,
    needs_claim,
    restore_point,
)
from nbstream.protocol import Message, Position, StreamError, encode
from nbstream.protocol.errors import ErrorCode

UNKNOWN, REFUSED = Claim(ClaimOutcome.UNKNOWN), Claim(ClaimOutcome.REFUSED)
MINE = Claim(ClaimOutcome.MINE)
RECORD = SessionRecord("s", "ann", "e1", 5, [(3, b"three"), (4, b"four")])
ADOPTED = Claim(ClaimOutcome.ADOPTED, RECORD)


@pytest.mark.parametrize(("local", "claim", "action"), [
    (None, UNKNOWN, ResumeAction.FRESH),  # nobody knows it: a new session under that id
    (LocalCopy("ann"), UNKNOWN, ResumeAction.KEEP),  # Redis lost it, or is away
    (LocalCopy("ann"), MINE, ResumeAction.KEEP),  # this node holds it last
    (LocalCopy("ann"), ADOPTED, ResumeAction.ADOPT),  # A -> B -> A: the copy here is stale
    (None, ADOPTED, ResumeAction.ADOPT),
    (None, REFUSED, ResumeAction.REFUSE),
    (LocalCopy("bob"), UNKNOWN, ResumeAction.REFUSE),
])
def test_decide(local: LocalCopy | None, claim: Claim, action: ResumeAction) -> None:
    assert decide(local, claim, "ann") is action


def test_only_presented_ids_of_the_same_user_are_claimed_and_only_when_shared() -> None:
    assert needs_claim(True, True, None, "ann")
    assert needs_claim(True, True, LocalCopy("ann"), "ann")
    assert not needs_claim(False, True, None, "ann")  # an id the server made up is new
    assert not needs_claim(True, False, None, "ann")  # one process: nothing to ask
    assert not needs_claim(True, True, LocalCopy("bob"), "ann")  # refused without asking


def test_restore_point_goes_on_after_what_the_client_saw() -> None:
    assert restore_point(RECORD, None) == (RECORD.frames, 5)
    assert restore_point(RECORD, Position("e1", 2)) == (RECORD.frames, 5)
    assert restore_point(RECORD, Position("e1", 6)) == ([], 7)  # it saw more than Redis has
    assert restore_point(RECORD, Position("other", 9)) == (RECORD.frames, 5)


def test_answered_chats_are_those_with_an_end_or_an_error_in_the_frames() -> None:
    frames = [encode(Message("content", {"text": "hi", "reply_to": "c0"})),
              encode(Message("end", {"reply_to": "c1"})),
              encode(Message("error", StreamError(ErrorCode.RATE_LIMITED,
                                                  details={"reply_to": "c2"}).to_dict())),
              encode(Message("end", {})), b"not json"]
    assert answered_chats(list(enumerate(frames))) == ["c1", "c2"]


def delivery(text: str, user: str | None = "ann") -> Delivery:
    return Delivery(user, Message("content", {"text": text}))


def texts(adoption: Adoption) -> list[str]:
    return [d.message.text or "" for d in adoption.deliveries()]


def test_an_adoption_keeps_what_the_owner_no_longer_got() -> None:
    adoption = Adoption("s", "ann")  # a live owner: ask it first
    adoption.entries.append(("c", 1, delivery("before, from c")))
    adoption.entries.append(("", 7, delivery("own, echoed before the request")))
    adoption.came_back(7)
    adoption.entries.append(("", 8, delivery("own, in flight")))
    adoption.restart()  # the request goes out; until it comes back, the owner gets it all
    assert texts(adoption) == ["own, in flight"]
    adoption.came_back(8)  # ahead of the request: the owner had it
    adoption.entries.append(("", 9, delivery("own, after")))
    adoption.armed = True  # the request came through the channel
    adoption.came_back(9)
    adoption.entries.append(("owner", 4, delivery("the owner's, pushed by itself")))
    adoption.entries.append(("owner", 5, delivery("the owner's, after it let go")))
    adoption.entries.append(("c", 2, delivery("after, from c")))
    adoption.cut = ("owner", 4)
    assert texts(adoption) == ["own, after", "the owner's, after it let go", "after, from c"]
    assert adoption.wants(None) and adoption.wants("ann") and not adoption.wants("bob")

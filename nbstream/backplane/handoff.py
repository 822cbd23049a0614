"""What a resume does on this process, given its own copy and the shared record. No I/O.

A client may come back through any server process. That process may hold a copy of
the session (it served the client before), the shared store may know the session
(another process served it since), or neither. The rules:

* a copy or a record of **another user** refuses the connection and changes nothing;
* a copy this process still **owns** is current (the shared record lags it): keep it;
* otherwise the shared record is current: a copy here is stale, and is replaced;
* nobody knows the session: it starts afresh under the id the client gave.

The server asks :func:`needs_claim`, then :meth:`Backplane.claim` if so, then
:func:`decide`; with ADOPT it restores the record with :func:`restore_point` and
:func:`answered_chats`. While a session changes hands, the taking process keeps the
fan-out meant for it in an :class:`Adoption`.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any

import msgspec

from nbstream.backplane.base import Claim, ClaimOutcome, Delivery, SessionRecord
from nbstream.protocol import Position


class ResumeAction(enum.Enum):
    """What the server does with a connection that presents a session id."""

    KEEP = "keep"
    """Continue with this process's copy of the session."""
    ADOPT = "adopt"
    """Drop any copy here and continue from the claim's record."""
    FRESH = "fresh"
    """Start a new session under the id the client gave."""
    REFUSE = "refuse"
    """The session belongs to another user: refuse (UNAUTHORIZED), change nothing."""


@dataclass(frozen=True)
class LocalCopy:
    """What the decision needs of this process's copy of the session."""

    user: str | None


def needs_claim(presented: bool, shared: bool, local: LocalCopy | None,
                user: str | None) -> bool:
    """True when the shared store must be asked before the session can be used.

    Only ids the client presented (a made-up id is new), only with a shared
    backplane, and never for another user's copy (refused without asking).
    """
    return presented and shared and (local is None or local.user == user)


def decide(local: LocalCopy | None, claim: Claim, user: str | None) -> ResumeAction:
    """The action for ``user`` presenting a session, given the local copy and the claim."""
    if local is not None and local.user != user:
        return ResumeAction.REFUSE
    if claim.outcome is ClaimOutcome.REFUSED:
        return ResumeAction.REFUSE
    if claim.outcome is ClaimOutcome.ADOPTED:
        return ResumeAction.ADOPT
    return ResumeAction.KEEP if local is not None else ResumeAction.FRESH


def restore_point(record: SessionRecord, seen: Position | None
                  ) -> tuple[list[tuple[int, bytes]], int]:
    """The frames to restore and the next offset, for a client that last saw ``seen``.

    A client may have seen messages the shared record lacks (the previous holder
    died before writing them): it missed nothing, so the session goes on after them.
    """
    if seen is not None and seen.epoch == record.epoch and seen.offset >= record.next_offset:
        return [], seen.offset + 1
    return record.frames, record.next_offset


class _Envelope(msgspec.Struct):
    type: str
    data: Any = None


_envelope = msgspec.json.Decoder(_Envelope)


def answered_chats(frames: list[tuple[int, bytes]]) -> list[str]:
    """Ids of the chats whose final reply (``end``, or an ``error``) is among ``frames``.

    A client resends chats it has no reply for after a resume; the adopting process
    must drop those it sees answered here (the reply is replayed), as the previous
    holder would have.
    """
    ids: list[str] = []
    for _, frame in frames:
        try:
            envelope = _envelope.decode(frame)
        except msgspec.DecodeError:
            continue
        data = envelope.data if isinstance(envelope.data, dict) else {}
        if envelope.type == "error":
            details = data.get("details")
            data = details if isinstance(details, dict) else {}
        elif envelope.type != "end":
            continue
        reply_to = data.get("reply_to")
        if isinstance(reply_to, str):
            ids.append(reply_to)
    return ids


@dataclass(eq=False)
class Adoption:
    """A session this process is taking over; keeps the fan-out its copy would get.

    Publications of other processes are kept as they arrive while :attr:`armed`. This
    process's own are kept when published (its local push could not reach a session
    it does not hold yet) and withdrawn if they come back through the channel ahead
    of the release request (then the owner had them).
    """

    session: str
    user: str | None
    armed: bool = True
    """Publications arriving now belong to the session (set when the channel says so)."""
    released: asyncio.Event = field(default_factory=asyncio.Event)
    cut: tuple[str, int] | None = None
    """(former owner, its last publication it pushed into the session itself)."""
    entries: list[tuple[str, int, Delivery]] = field(default_factory=list)
    """(publisher, number, delivery); publisher "" for this process."""
    echoed: set[int] = field(default_factory=set)
    """Own publications that came back through the channel."""
    withdrawn: set[int] = field(default_factory=set)
    """Own publications the owner had."""

    def wants(self, user: str | None) -> bool:
        """True for fan-out addressed to the session's user (or to everyone)."""
        return user is None or user == self.user

    def restart(self) -> None:
        """Wait for this process's release request to come through the channel.

        What was kept of other processes so far, and what came back of this
        process's own, preceded the request: the owner had it.
        """
        self.armed = False
        self.entries = [entry for entry in self.entries if entry[0] == ""]
        self.withdrawn |= self.echoed

    def came_back(self, seq: int) -> None:
        """This process's publication ``seq`` came through the channel."""
        self.echoed.add(seq)
        if not self.armed:
            self.withdrawn.add(seq)

    def deliveries(self) -> tuple[Delivery, ...]:
        """What to push into the adopted session, in order."""
        owner, cut = self.cut or ("", 0)
        return tuple(delivery for node, seq, delivery in self.entries
                     if not (node == "" and seq in self.withdrawn)
                     and not (node == owner and seq <= cut))

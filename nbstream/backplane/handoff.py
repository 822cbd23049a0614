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
:func:`answered_chats`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import msgspec

from nbstream.backplane.base import Claim, ClaimOutcome, SessionRecord
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

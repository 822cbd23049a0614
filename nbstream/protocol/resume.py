"""Positions in a session's stream, and what to replay when a client comes back.

Every message the server sends in a session gets the id ``"<epoch>:<offset>"``: the
offset counts the session's messages from 0, and the epoch is drawn at random when
the session's history is created. A reconnecting client presents the id of the last
message it saw. Same epoch and every later message still in the history: the server
replays them and the recovery is complete. Another epoch (the server lost the
history: a restart, an expired session) or a gap beyond the history window: the
client is told ``recovered: false`` and must fetch its state again; nothing is
silently skipped. This is the scheme of Centrifugo's stream recovery.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass

from nbstream.protocol.history import BoundedHistory


def new_epoch() -> str:
    """A fresh random epoch for a new session history."""
    return os.urandom(4).hex()


@dataclass(frozen=True, slots=True)
class Position:
    """Where a message sits in a session's stream."""

    epoch: str
    offset: int

    def to_id(self) -> str:
        """The id that carries this position (offset -1: before the epoch's first message)."""
        return f"{self.epoch}:{self.offset}"

    @classmethod
    def parse(cls, message_id: str | None) -> Position | None:
        """The position in a message id, or None if the id carries none.

        ``"<epoch>:-1"`` is the position of a client that has seen no message of the
        epoch yet: a resume from it replays the epoch from its first message.
        """
        if not message_id:
            return None
        epoch, sep, offset = message_id.rpartition(":")
        if not sep or not epoch or len(offset) > 18:
            return None
        if offset == "-1":
            return cls(epoch, -1)
        if not offset.isdigit():
            return None
        return cls(epoch, int(offset))


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """What the server does for a returning client."""

    recovered: bool
    """True when every message after the client's position can be replayed."""
    frames: list[bytes]
    """The encoded messages to send again, oldest first."""
    reason: str = ""
    """Why recovery failed (empty when it did not)."""


def plan_resume(history: BoundedHistory, epoch: str, last_seen: Position) -> ResumePlan:
    """Decide what to replay to a client whose last message was ``last_seen``."""
    if last_seen.epoch != epoch:
        return ResumePlan(False, [], "the server no longer has this session's history "
                                     f"(epoch {last_seen.epoch} is gone, now {epoch})")
    frames = history.since(last_seen.offset + 1)
    if frames is None:
        if last_seen.offset + 1 > history.next_offset:
            return ResumePlan(False, [], f"offset {last_seen.offset} was never sent")
        return ResumePlan(False, [], f"messages {last_seen.offset + 1} to "
                                     f"{history.first_offset - 1} fell out of the history")
    return ResumePlan(True, frames)


class RecentIds:
    """The last ``capacity`` ids seen, to drop messages a client sends twice."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._order: deque[str] = deque()
        self._ids: set[str] = set()

    def add(self, message_id: str) -> bool:
        """Remember ``message_id``; False if it was already seen (a duplicate)."""
        if message_id in self._ids:
            return False
        self._ids.add(message_id)
        self._order.append(message_id)
        if len(self._order) > self.capacity:
            self._ids.discard(self._order.popleft())
        return True

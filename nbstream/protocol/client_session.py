"""The client side of a session, without sockets: where it is, what waits for a reply,
and what to do when the connection drops or comes back.

:class:`ClientSessionCore` keeps the session's position (the id of the last stream
message seen), the requests sent and not answered yet (``unacked``), those sent while
reconnecting (``buffered``), and drops replayed messages the client already has.
The asyncio client (``nbstream.client``) asks it whether to reconnect after a close
and what to send again after a resume.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from nbstream.protocol import closing
from nbstream.protocol.envelope import Message
from nbstream.protocol.errors import ErrorCode, StreamError
from nbstream.protocol.replies import reply_to
from nbstream.protocol.resume import Position

_HEARTBEATS = frozenset({"ping", "pong"})
"""Messages that mean nothing to the next connection."""

FINAL_ERRORS = frozenset({ErrorCode.UNAUTHORIZED, ErrorCode.INTERNAL_ERROR,
                          ErrorCode.MESSAGE_TOO_LARGE})
"""Errors sent before a close after which reconnecting would not help."""


class SendDecision(enum.Enum):
    """What to do with a message the user sends."""

    WRITE = "write"
    """Put it on the wire now."""
    BUFFER = "buffer"
    """Keep it until the connection is back (a request, while reconnecting)."""
    DROP = "drop"
    """Forget it: it means nothing to the next connection (a ping or pong, while
    reconnecting)."""
    REFUSE = "refuse"
    """The buffer is full: tell the user."""


@dataclass(frozen=True, slots=True)
class ResumeOutcome:
    """What a reconnect achieved, and what the client does next."""

    recovered: bool | None
    """True: everything missed is being replayed; False: some of it is lost; None: the
    client had no session position (nothing to recover)."""
    resend: list[Message]
    """Requests to write again, in the order they were first sent."""
    error: StreamError | None
    """RECOVERY_FAILED to hand to the user, when something may be lost."""


@dataclass
class ClientSessionCore:
    """One client session's bookkeeping. ``tracked`` requests are those whose reply the
    client waits for (chats); only they are buffered and sent again."""

    send_buffer: int = 100
    session_id: str | None = None
    epoch: str | None = None
    last_id: str | None = None
    """The id of the last stream message seen (``"<epoch>:<offset>"``)."""
    reconnecting: bool = False
    unacked: dict[str, Message] = field(default_factory=dict)
    """Requests written and not answered yet (sent again after a resume)."""
    buffered: dict[str, Message] = field(default_factory=dict)
    """Messages sent while reconnecting (or whose write failed), never written yet."""
    untracked: set[str] = field(default_factory=set)
    """Ids in :attr:`buffered` that await no reply (a conversation's inputs): written
    once after the resume, never sent again."""
    last_error: StreamError | None = None
    """The last error the server sent (reported with the close that follows it)."""
    last_close: tuple[int, str] | None = None
    """The last close code and reason the server sent (kept across reconnect attempts)."""
    _replayed_up_to: Position | None = None

    # -- welcome and resume --------------------------------------------------------------------

    def welcomed(self, data: Any) -> None:
        """A ``welcome`` arrived: learn the session id and epoch.

        A client that has seen no stream message yet still holds a position: the one
        before the epoch's first message, so a resume replays from the start.
        """
        if not isinstance(data, dict):
            return
        session_id, epoch = data.get("session_id"), data.get("epoch")
        if isinstance(session_id, str):
            self.session_id = session_id
        if isinstance(epoch, str):
            if epoch != self.epoch or self.last_id is None:
                self.last_id = Position(epoch, -1).to_id()
            self.epoch = epoch

    def resume_params(self) -> dict[str, str]:
        """Query parameters that name the session and position to resume."""
        params = {}
        if self.session_id:
            params["session_id"] = self.session_id
        if self.last_id is not None:
            params["last_id"] = self.last_id
        return params

    def resuming(self) -> None:
        """A reconnect is about to present :meth:`resume_params`."""
        self._replayed_up_to = Position.parse(self.last_id)

    def resumed(self, welcome: Any, *, abnormal: bool) -> ResumeOutcome:
        """The server welcomed the reconnect: what it recovered, what to send again.

        ``abnormal`` is False when the previous connection ended in an orderly way
        (1001, the server went away): losing a history nobody waited on is no failure.
        """
        self.last_error = None
        data = welcome if isinstance(welcome, dict) else {}
        recovered = data.get("recovered")
        resend = list(self.unacked.values())
        error = None
        if recovered is False:
            if abnormal or self.unacked:
                error = StreamError(ErrorCode.RECOVERY_FAILED, data.get("reason") or None,
                                    details={"session_id": self.session_id,
                                             "epoch": data.get("epoch"),
                                             "unanswered": list(self.unacked)})
            resend = []
            self.unacked.clear()
            self.last_id = None
            self._replayed_up_to = None
        self.welcomed(data)
        buffered, self.buffered = self.buffered, {}
        for message in buffered.values():
            if message.id not in self.untracked:
                self.unacked[message.id] = message
        self.untracked.clear()
        self.reconnecting = False
        return ResumeOutcome(recovered if recovered is None else bool(recovered),
                             resend + list(buffered.values()), error)

    # -- closing ----------------------------------------------------------------------------

    def closed_by_server(self, code: int | None, reason: str) -> None:
        """Remember the close the server sent (kept when later attempts fail)."""
        if code is not None:
            self.last_close = (code, reason)

    def should_reconnect(self, code: int | None, *, can_reconnect: bool) -> bool:
        """After a close with ``code``: reconnect (True) or report it closed for good."""
        if not can_reconnect or self.session_id is None:
            return False
        if self.last_error is not None and self.last_error.code in FINAL_ERRORS:
            return False
        return closing.resumable(code)

    # -- sending ------------------------------------------------------------------------------

    def sending(self, message: Message, *, tracked: bool) -> SendDecision:
        """The user sends ``message``; ``tracked`` when a reply is awaited.

        While reconnecting, messages wait in the buffer (at most ``send_buffer``) and
        go out after the resume; heartbeats are dropped.
        """
        if self.reconnecting:
            if message.type in _HEARTBEATS:
                return SendDecision.DROP
            if len(self.buffered) >= self.send_buffer:
                return SendDecision.REFUSE
            self._buffer(message, tracked=tracked)
            return SendDecision.BUFFER
        if tracked:
            self.unacked[message.id] = message
        return SendDecision.WRITE

    def write_failed(self, message: Message, *, tracked: bool) -> None:
        """The connection dropped before ``message`` left: it goes after the resume
        (the server drops a copy it already got, by id)."""
        if message.type in _HEARTBEATS:
            return
        self.unacked.pop(message.id, None)
        self._buffer(message, tracked=tracked)

    def _buffer(self, message: Message, *, tracked: bool) -> None:
        self.buffered[message.id] = message
        if not tracked:
            self.untracked.add(message.id)

    # -- receiving ----------------------------------------------------------------------------

    def received(self, message: Message) -> bool:
        """A server message arrived; False when it is a replay the client already has."""
        message_id = message.id
        if ":" in message_id:  # a position in the session's stream
            replayed = self._replayed_up_to
            if replayed is not None:
                position = Position.parse(message_id)
                if position is not None:
                    if position.epoch == replayed.epoch and position.offset <= replayed.offset:
                        return False
                    self._replayed_up_to = None
            self.last_id = message_id
        kind = message.type
        if kind == "end" or kind == "error":
            ref = reply_to(message)
            if ref is not None:
                self.unacked.pop(ref, None)
            if kind == "error":
                self.last_error = message.error
        return True

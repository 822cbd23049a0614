"""Per-session state a handler can read: identity, counters, history, context budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nbstream.protocol.errors import ErrorCode, StreamError
from nbstream.protocol.history import BoundedHistory
from nbstream.protocol.resume import RecentIds, new_epoch


@dataclass(eq=False)
class Session:
    """One client session. Handlers get it as their second argument.

    Keep your own per-session data in :attr:`state`; read :attr:`history` for what
    the server sent recently (bounded by the server's ``history_*`` options).
    """

    id: str
    user: str | None
    connected_at: datetime
    history: BoundedHistory
    context_max_messages: int | None = None
    state: dict[str, Any] = field(default_factory=dict)
    epoch: str = field(default_factory=new_epoch)
    """Changes whenever the server starts this session's history anew."""
    client_ids: RecentIds = field(default_factory=lambda: RecentIds(1024))
    """Ids of recent client messages, to drop duplicates a reconnecting client resends."""
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    chats: int = 0

    def record_in(self, size: int) -> None:
        """Count one frame received from the client."""
        self.messages_in += 1
        self.bytes_in += size

    @property
    def log_fields(self) -> dict[str, Any]:
        """``extra=`` for log records about this session (JSON logs show them as fields)."""
        return {"session_id": self.id, "user": self.user}

    def next_id(self) -> str:
        """The id of the next outgoing message: ``"<epoch>:<offset>"``."""
        return f"{self.epoch}:{self.history.next_offset}"  # Position(...).to_id(), inlined

    def count_out(self, size: int) -> None:
        """Count one message sent but not kept: a control message (ping, pong, welcome) or
        any message of a protocol without resume."""
        self.messages_out += 1
        self.bytes_out += size

    def record_out(self, encoded: bytes) -> int:
        """Count one message sent to the client and keep it in the history; its offset.

        Encode the message with :meth:`next_id` as its id first.
        """
        self.messages_out += 1
        self.bytes_out += len(encoded)
        return self.history.add(encoded)

    def start_chat(self) -> StreamError | None:
        """Spend one chat from the context budget, or return CONTEXT_EXHAUSTED."""
        if self.context_max_messages is not None and self.chats >= self.context_max_messages:
            return StreamError(
                ErrorCode.CONTEXT_EXHAUSTED,
                f"this session has used its {self.context_max_messages} chats; "
                "open a new session to go on",
                details={"limit": self.context_max_messages},
            )
        self.chats += 1
        return None

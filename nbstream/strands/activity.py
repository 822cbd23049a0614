"""Whether an agent is in the middle of answering, from the events it sends.

A graceful shutdown lets the answer under way finish before the agent is stopped,
as the server does for replies in flight. :class:`Activity` decides from what the
agent's output sees: a response is open, tools asked for have not reported back, or
an input (text, or tool results) waits for its response. Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Activity:
    """The agent's answering state, fed with each output event's type and each input."""

    response_open: bool = False
    tools_running: bool = False
    answer_due: bool = False
    """An input or tool results reached the model and its response has not started."""
    connection_id: str | None = None
    """The model connection's id, from the last ``bidi_connection_start``."""

    @property
    def busy(self) -> bool:
        """True while an answer is under way or due."""
        return self.response_open or self.tools_running or self.answer_due

    def heard(self) -> None:
        """A text input went to the model: a response is due."""
        self.answer_due = True

    def failed(self) -> None:
        """The model failed: nothing it was answering will finish."""
        self.response_open = self.tools_running = self.answer_due = False

    def saw(self, kind: str, data: object = None) -> None:
        """The agent sent an event of type ``kind`` (with its fields ``data``)."""
        if kind == "bidi_response_start":
            self.response_open, self.answer_due = True, False
        elif kind == "bidi_response_stop":
            self.response_open = False
        elif kind == "bidi_tool_use_blocks":
            self.tools_running = True
        elif kind == "tool_result_message":
            self.tools_running, self.answer_due = False, True
        elif kind == "bidi_connection_start" and isinstance(data, dict):
            connection_id = data.get("connection_id")
            self.connection_id = connection_id if isinstance(connection_id, str) else None
        elif kind in ("bidi_connection_restart", "bidi_connection_stop"):
            # A restarted connection does not finish the response it cut; a stopped one
            # answers nothing more.
            self.response_open = self.answer_due = False
            self.tools_running = self.tools_running and kind != "bidi_connection_stop"

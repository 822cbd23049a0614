"""What a client of an agent receives: typed events, and the events of one answer.

:class:`AgentEvent` is one envelope from the agent (a Strands event, an ``error``,
a ``bidi_config`` reply) with its fields read for you: ``delta``, ``role``,
``audio`` (decoded, or from its binary frame), ``error``. :class:`AgentTurn` holds
the events of one answer and what a user measures of it: time to the first
transcript and audio, duration, barge-in latency, tool round trip.
:class:`AnswerTracker` decides where an answer ends. Pure: no clock, no I/O.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from nbstream.protocol import Message, MessageType, StreamError

MODEL_ERROR = "MODEL_ERROR"
"""The error code of an agent's model failure (the server restarts the agent)."""


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """One event from the agent, as the client read it.

    Attributes:
        type: The envelope type: the Strands event's ``type`` (``bidi_text_delta``...),
            ``error``, ``bidi_config``, ``server_shutdown``; ``audio_frame`` for a binary
            frame that came without its envelope.
        data: The event's fields (JSON data).
        id: The envelope id (``"<epoch>:<offset>"``: its place in the session's stream).
        at: When the client read it (``time.monotonic()``).
        payload: The binary frame that carried its audio, in binary-audio mode.
    """

    type: str
    data: Any
    id: str
    at: float
    payload: bytes | None = None

    @classmethod
    def of(cls, message: Message, at: float, payload: bytes | None = None) -> AgentEvent:
        """The event an envelope carries, read at ``at``."""
        return cls(str(message.type), message.data, message.id, at, payload)

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the event, like ``dict.get``."""
        return self.data.get(key, default) if isinstance(self.data, dict) else default

    @property
    def delta(self) -> str:
        """The text of a transcript or text delta ('' for other events)."""
        delta = self.get("delta")
        return delta if isinstance(delta, str) else ""

    @property
    def role(self) -> str | None:
        """``user`` or ``assistant`` for transcript events, else None."""
        role = self.get("role")
        return role if isinstance(role, str) else None

    @property
    def audio(self) -> bytes:
        """The audio of a ``bidi_audio_delta`` (b'' for other events, or when its
        binary frame was not replayed after a resume)."""
        if self.payload is not None:
            return self.payload
        encoded = self.get("audio")
        if not isinstance(encoded, str):
            return b""
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return b""

    @property
    def error(self) -> StreamError | None:
        """The structured error of an ``error`` event, else None."""
        return StreamError.from_dict(self.data) if self.type == MessageType.ERROR else None

    def __repr__(self) -> str:
        shown = {k: (f"<{len(v)} chars>" if k == "audio" and isinstance(v, str) else v)
                 for k, v in (self.data.items() if isinstance(self.data, dict) else ())}
        return f"<AgentEvent {self.type} {shown}>"


@dataclass
class AnswerTracker:
    """Where an answer ends, event by event.

    An answer is the response to an input and, when that response asks for tools,
    the response that uses their results. It ends at the ``bidi_response_stop`` of a
    response with no tool pending, at an ``error`` that refuses the input (or a model
    failure), or when the agent stops. With ``first_stop`` it ends at the first
    response stop (the response cut by an interruption).
    """

    input_id: str | None = None
    first_stop: bool = False
    responses: int = 0
    tools_pending: bool = False
    error: StreamError | None = None
    done: bool = False

    def feed(self, event: AgentEvent) -> bool:
        """Take the next event in; True once the answer is complete."""
        kind = event.type
        if kind == "bidi_response_start":
            self.responses += 1
        elif kind == "bidi_tool_use_blocks":
            self.tools_pending = True
        elif kind == "tool_result_message":
            self.tools_pending = False
        elif kind == "bidi_response_stop":
            self.done = self.first_stop or (self.responses > 0 and not self.tools_pending)
        elif kind == "bidi_connection_stop":
            self.done = True
        elif kind == MessageType.ERROR:
            error = event.error
            assert error is not None
            refers = error.details.get("id")
            if error.code == MODEL_ERROR or (refers is not None and refers == self.input_id):
                self.error, self.done = error, True
        return self.done


@dataclass
class AgentTurn:
    """The events of one answer, and its timings (seconds, None when it did not happen).

    Attributes:
        events: Every event read, in order.
        sent_at: When the input it answers was sent (``time.monotonic()``).
        interrupted_at: When an interrupting input was sent, for :attr:`barge_in`.
    """

    events: list[AgentEvent] = field(default_factory=list)
    sent_at: float | None = None
    interrupted_at: float | None = None

    def _first(self, kind: str, role: str | None = None) -> AgentEvent | None:
        for event in self.events:
            if event.type == kind and (role is None or event.role == role):
                return event
        return None

    def _since(self, event: AgentEvent | None, start: float | None) -> float | None:
        return None if event is None or start is None else event.at - start

    @property
    def types(self) -> list[str]:
        """The type of each event, in order."""
        return [event.type for event in self.events]

    @property
    def transcript(self) -> str:
        """What the assistant said (its speech transcript)."""
        return "".join(e.delta for e in self.events
                       if e.type == "bidi_transcript_delta" and e.role == "assistant")

    @property
    def heard(self) -> str:
        """What the model heard the user say (its user transcript), if it reports it."""
        return "".join(e.delta for e in self.events
                       if e.type == "bidi_transcript_delta" and e.role == "user")

    @property
    def text(self) -> str:
        """The assistant's text output."""
        return "".join(e.delta for e in self.events if e.type == "bidi_text_delta")

    @property
    def audio(self) -> bytes:
        """The assistant's audio, joined (16-bit PCM with the scripted model)."""
        return b"".join(e.audio for e in self.events if e.type == "bidi_audio_delta")

    @property
    def tools(self) -> list[dict[str, Any]]:
        """Each tool call: ``{"name", "input", "status", "result"}`` (result text)."""
        calls: dict[str, dict[str, Any]] = {}
        for event in self.events:
            if event.type == "bidi_tool_use_blocks":
                for use in event.get("tool_uses") or ():
                    if isinstance(use, dict):
                        calls[str(use.get("toolUseId"))] = {
                            "name": use.get("name"), "input": use.get("input"),
                            "status": None, "result": None}
            elif event.type == "tool_result":
                result = event.get("tool_result")
                found = calls.get(str(result.get("toolUseId"))) if isinstance(
                    result, dict) else None
                if found is not None and isinstance(result, dict):
                    found["status"] = result.get("status")
                    found["result"] = " ".join(
                        str(part.get("text", part.get("json", "")))
                        for part in result.get("content", ()) if isinstance(part, dict))
        return list(calls.values())

    @property
    def interrupted(self) -> bool:
        """Whether the user barged in (a ``bidi_barge_in`` came)."""
        return self._first("bidi_barge_in") is not None

    @property
    def errors(self) -> list[StreamError]:
        """Every error event among the events."""
        return [e.error for e in self.events if e.error is not None]

    @property
    def first_transcript(self) -> float | None:
        """Seconds from the input to the first assistant transcript delta."""
        return self._since(self._first("bidi_transcript_delta", "assistant"), self.sent_at)

    @property
    def first_audio(self) -> float | None:
        """Seconds from the input to the first audio delta."""
        return self._since(self._first("bidi_audio_delta"), self.sent_at)

    @property
    def first_text(self) -> float | None:
        """Seconds from the input to the first text delta."""
        return self._since(self._first("bidi_text_delta"), self.sent_at)

    @property
    def duration(self) -> float | None:
        """Seconds from the input to the last event read."""
        return self._since(self.events[-1] if self.events else None, self.sent_at)

    @property
    def barge_in(self) -> float | None:
        """Seconds from the interrupting input to the ``bidi_barge_in``."""
        return self._since(self._first("bidi_barge_in"), self.interrupted_at)

    @property
    def tool_round_trip(self) -> float | None:
        """Seconds from the model asking for tools to the last of their results."""
        asked = self._first("bidi_tool_use_blocks")
        results = [e for e in self.events if e.type == "tool_result"]
        return None if asked is None or not results else results[-1].at - asked.at

    def timings(self) -> dict[str, float | None]:
        """Every timing above by name (what a load test records per turn)."""
        return {"first_transcript": self.first_transcript, "first_audio": self.first_audio,
                "duration": self.duration, "barge_in": self.barge_in,
                "tool_round_trip": self.tool_round_trip}

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        said = self.transcript or self.text
        state = " interrupted" if self.interrupted else ""
        return (f"<AgentTurn {len(self.events)} events{state}: {said[:60]!r}"
                f"{', tools ' + str([t['name'] for t in self.tools]) if self.tools else ''}>")

"""Turns folded from the flow of a Strands agent's envelopes: who said what, in order.

:class:`TurnLog` reads the :class:`~nbstream.FlowEvent` stream of a server or client
that carries ``bidi_*`` envelopes and keeps, per session, the last turns: the user's
words (or audio), the assistant's transcript and text, the tools called and their
results, the audio chunks' sizes, and whether the user barged in. TurnView draws it;
nothing here does I/O.

Which turn a response belongs to: inputs reach the model in order, and so do tool
results (the agent reports ``tool_result_message`` as it sends them), so each
``bidi_response_start`` answers the oldest input or tool result not answered yet; a
response with nothing waiting continues the last turn.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from nbstream.events import FlowEvent

TurnState = Literal["waiting", "speaking", "tools", "done", "interrupted", "cut", "refused",
                    "failed"]
"""``waiting`` for a response; ``speaking``; waiting for ``tools``; ``done``;
``interrupted`` by a barge-in; ``cut`` by the connection closing or the agent stopping;
``refused``: its input got an error instead of reaching the model; ``failed``: the
model failed while answering it (MODEL_ERROR)."""
MAX_AUDIO_BARS = 120
"""Audio chunk sizes kept per turn (the rest are only counted)."""
MAX_TEXT = 4_000
"""Characters of user or assistant text kept per turn."""
MAX_INPUTS = 256
"""Input ids remembered per session, to find the turn an error refers to."""
MODEL_ERROR = "MODEL_ERROR"
"""The error code of a model failure (as :mod:`nbstream.strands.received` names it)."""


def _size_of(data: dict[str, Any], field_name: str) -> int:
    """Bytes of an audio field: counted in binary mode, else decoded from base64 length."""
    if isinstance(data.get("audio_bytes"), int):
        return int(data["audio_bytes"])
    text = data.get(field_name)
    if not isinstance(text, str):
        return 0
    return len(text) * 3 // 4 - text[-2:].count("=")


def _append(text: str, piece: Any) -> str:
    return text + str(piece) if len(text) < MAX_TEXT else text


@dataclass
class ToolRecord:
    """One tool call of a turn and, once back, its result."""

    id: str
    name: str
    input: Any
    status: str | None = None
    result: str | None = None


@dataclass
class TurnRecord:
    """One turn: an input and the responses that answered it."""

    index: int
    session_id: str
    started: float
    user: str = ""
    user_audio_bytes: int = 0
    user_audio_chunks: int = 0
    inputs: int = 0
    """Inputs of the turn that reached the agent (a refused one does not count)."""
    assistant: str = ""
    """The assistant's speech transcript."""
    text: str = ""
    """The assistant's text output."""
    tools: list[ToolRecord] = field(default_factory=list)
    audio: list[int] = field(default_factory=list)
    """Sizes of the first :data:`MAX_AUDIO_BARS` audio chunks, in bytes."""
    audio_chunks: int = 0
    audio_bytes: int = 0
    state: TurnState = "waiting"
    barge_in_at: float | None = None
    first_output_at: float | None = None
    """When the first transcript, text or audio delta came."""
    ended: float | None = None
    notes: list[str] = field(default_factory=list)
    """Errors and connection restarts that happened during the turn."""

    def to_json(self) -> dict[str, Any]:
        """The turn as plain JSON data, as TurnView sends it to the browser."""
        return {
            "index": self.index, "session": self.session_id, "started": self.started,
            "user": self.user, "user_audio_bytes": self.user_audio_bytes,
            "user_audio_chunks": self.user_audio_chunks,
            "assistant": self.assistant, "text": self.text,
            "tools": [{"id": t.id, "name": t.name, "input": t.input, "status": t.status,
                       "result": t.result} for t in self.tools],
            "audio": self.audio, "audio_chunks": self.audio_chunks,
            "audio_bytes": self.audio_bytes, "state": self.state,
            "barge_in_at": self.barge_in_at, "first_output_at": self.first_output_at,
            "ended": self.ended, "notes": self.notes,
        }


class _SessionTurns:
    """The turns of one session and what its next response will answer."""

    def __init__(self, session_id: str, max_turns: int) -> None:
        self.session_id = session_id
        self.turns: deque[TurnRecord] = deque(maxlen=max_turns)
        self.count = 0
        self.unanswered: deque[TurnRecord] = deque()
        self.current: TurnRecord | None = None
        self.tools: dict[str, tuple[TurnRecord, ToolRecord]] = {}
        self.inputs: OrderedDict[str, TurnRecord] = OrderedDict()

    def new_turn(self, at: float) -> TurnRecord:
        self.count += 1
        turn = TurnRecord(self.count, self.session_id, at)
        self.turns.append(turn)
        return turn

    def latest(self, at: float) -> TurnRecord:
        """The turn being answered, else the last one, else a new one."""
        if self.current is not None:
            return self.current
        return self.turns[-1] if self.turns else self.new_turn(at)

    def _listening(self) -> TurnRecord | None:
        """The audio turn still taking chunks (the last turn, waiting), if any."""
        last = self.turns[-1] if self.turns else None
        if last is not None and last.state == "waiting" and last.user_audio_chunks:
            return last
        return None

    def user_input(self, at: float, kind: str, data: dict[str, Any], input_id: str) -> None:
        turn = self._listening() if kind == "bidi_audio_input" else None
        if turn is None:
            turn = self.new_turn(at)
            self.unanswered.append(turn)
        if kind == "bidi_audio_input":
            turn.user_audio_chunks += 1
            turn.user_audio_bytes += _size_of(data, "audio")
        else:
            turn.user = (str(data.get("text", ""))[:MAX_TEXT] if kind == "bidi_text_input"
                         else f"(image, {data.get('format', '?')})")
        turn.inputs += 1
        self.inputs[input_id] = turn
        while len(self.inputs) > MAX_INPUTS:
            self.inputs.popitem(last=False)

    def binary_input(self, size: int) -> None:
        """A binary frame from the client: the audio of the chunk just announced."""
        turn = self._listening()
        if turn is not None:
            turn.user_audio_bytes += size

    def output(self, at: float, kind: str, data: dict[str, Any]) -> None:
        handler = _OUTPUT.get(kind)
        if handler is not None:
            handler(self, at, data)

    # -- one method per event type, listed in _OUTPUT below ---------------------------

    def response_start(self, at: float, data: dict[str, Any]) -> None:
        self.current = self.unanswered.popleft() if self.unanswered else self.latest(at)
        self.current.state = "speaking"

    def transcript(self, at: float, data: dict[str, Any]) -> None:
        if data.get("role") == "user":
            waiting = self.unanswered[-1] if self.unanswered else None
            if waiting is None:  # the provider heard speech we did not see sent
                waiting = self.new_turn(at)
                self.unanswered.append(waiting)
            waiting.user = _append(waiting.user, data.get("delta", ""))
            return
        turn = self.latest(at)
        turn.assistant = _append(turn.assistant, data.get("delta", ""))
        turn.first_output_at = turn.first_output_at or at

    def text(self, at: float, data: dict[str, Any]) -> None:
        turn = self.latest(at)
        turn.text = _append(turn.text, data.get("delta", ""))
        turn.first_output_at = turn.first_output_at or at

    def audio(self, at: float, data: dict[str, Any]) -> None:
        turn = self.latest(at)
        size = _size_of(data, "audio")
        turn.audio_chunks += 1
        turn.audio_bytes += size
        if len(turn.audio) < MAX_AUDIO_BARS:
            turn.audio.append(size)
        turn.first_output_at = turn.first_output_at or at

    def tool_uses(self, at: float, data: dict[str, Any]) -> None:
        turn = self.latest(at)
        for use in data.get("tool_uses") or ():
            if isinstance(use, dict):
                record = ToolRecord(str(use.get("toolUseId", "")), str(use.get("name", "")),
                                    use.get("input"))
                turn.tools.append(record)
                self.tools[record.id] = (turn, record)

    def tool_result(self, at: float, data: dict[str, Any]) -> None:
        result = data.get("tool_result")
        if not isinstance(result, dict):
            return
        found = self.tools.get(str(result.get("toolUseId", "")))
        if found is not None:
            found[1].status = str(result.get("status", ""))
            found[1].result = " ".join(
                str(part.get("text", part.get("json", ""))) for part in result.get("content", ())
                if isinstance(part, dict))[:MAX_TEXT]

    def tool_result_message(self, at: float, data: dict[str, Any]) -> None:
        message = data.get("message")
        content = message.get("content", ()) if isinstance(message, dict) else ()
        for block in content:
            result = block.get("toolResult") if isinstance(block, dict) else None
            found = self.tools.pop(str(result.get("toolUseId", "")), None) if isinstance(
                result, dict) else None
            if found is not None and found[0] not in self.unanswered:
                self.unanswered.append(found[0])  # the model answers it next

    def barge_in(self, at: float, data: dict[str, Any]) -> None:
        turn = self.latest(at)
        turn.barge_in_at = at
        turn.state = "interrupted"

    def response_stop(self, at: float, data: dict[str, Any]) -> None:
        turn = self.current
        self.current = None
        if turn is None:
            return
        turn.ended = at
        if turn.state == "speaking":
            turn.state = "tools" if any(t.result is None for t in turn.tools) else "done"

    def note(self, at: float, data: dict[str, Any], turn: TurnRecord | None = None) -> None:
        turn = turn or self.latest(at)
        text = data.get("message") or data.get("reason") or data.get("code") or ""
        turn.notes.append(str(text)[:200])

    def error(self, at: float, data: dict[str, Any]) -> None:
        """An error: it refuses an input (its ``details.id``), or the model failed."""
        details = data.get("details")
        refers = details.get("id") if isinstance(details, dict) else None
        refused = self.inputs.pop(str(refers), None) if refers is not None else None
        if refused is not None:
            refused.inputs -= 1
            if refused.inputs <= 0 and refused in self.unanswered:
                self.unanswered.remove(refused)
                refused.state, refused.ended = "refused", at
            self.note(at, data, refused)
            return
        if data.get("code") == MODEL_ERROR and (self.current or self.unanswered):
            failed = self.current or self.unanswered.popleft()
            self.current = None
            failed.state, failed.ended = "failed", at
            self.note(at, data, failed)
            return
        self.note(at, data)

    def stopped(self, at: float, data: dict[str, Any]) -> None:
        """The agent stopped (``bidi_connection_stop``): what it was answering is cut."""
        self.closed(at)

    def closed(self, at: float) -> None:
        for turn in self.turns:
            if turn.state in ("waiting", "speaking", "tools"):
                turn.state = "cut"
                turn.ended = at
        self.current = None
        self.unanswered.clear()


_OUTPUT = {
    "bidi_response_start": _SessionTurns.response_start,
    "bidi_transcript_delta": _SessionTurns.transcript,
    "bidi_text_delta": _SessionTurns.text,
    "bidi_audio_delta": _SessionTurns.audio,
    "bidi_tool_use_blocks": _SessionTurns.tool_uses,
    "tool_result": _SessionTurns.tool_result,
    "tool_result_message": _SessionTurns.tool_result_message,
    "bidi_barge_in": _SessionTurns.barge_in,
    "bidi_response_stop": _SessionTurns.response_stop,
    "bidi_connection_restart": _SessionTurns.note,
    "bidi_connection_stop": _SessionTurns.stopped,
    "error": _SessionTurns.error,
}
"""What each server-to-client envelope type does to the turns; other types are ignored."""
INPUTS = frozenset({"bidi_text_input", "bidi_audio_input", "bidi_image_input"})


class TurnLog:
    """Per session, the last ``max_turns`` turns, for at most ``max_sessions`` sessions.

    Feed it with :meth:`fold` (cheap; on the loop that publishes the events); read it
    with :meth:`turns` and :meth:`sessions`.
    """

    def __init__(self, max_turns: int = 50, max_sessions: int = 64) -> None:
        if max_turns < 1 or max_sessions < 1:
            raise ValueError("max_turns and max_sessions must be at least 1")
        self.max_turns = max_turns
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, _SessionTurns] = OrderedDict()

    def _session(self, session_id: str) -> _SessionTurns:
        found = self._sessions.get(session_id)
        if found is None:
            found = self._sessions[session_id] = _SessionTurns(session_id, self.max_turns)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(session_id)
        return found

    def fold(self, event: FlowEvent) -> bool:
        """Take one event in; True if it changed a turn (the view should refresh)."""
        message = event.message
        if event.kind == "close":
            session = self._sessions.get(event.session_id)
            if session is not None:
                session.closed(event.at)
            return session is not None
        if message is None or event.kind not in ("in", "out"):
            return False
        kind = str(message.type)
        data = message.data if isinstance(message.data, dict) else {}
        if event.direction == "c2s":
            if kind == "binary" and isinstance(message.data, bytes):
                session = self._sessions.get(event.session_id)
                if session is not None:
                    session.binary_input(len(message.data))
                return session is not None
            if kind not in INPUTS:
                return False
            self._session(event.session_id).user_input(event.at, kind, data, message.id)
            return True
        if kind not in _OUTPUT:
            return False
        self._session(event.session_id).output(event.at, kind, data)
        return True

    def sessions(self) -> list[str]:
        """Session ids, least recently active first."""
        return list(self._sessions)

    def turns(self, session_id: str | None = None) -> list[TurnRecord]:
        """The turns of ``session_id`` (default: the most recently active session)."""
        if session_id is None:
            if not self._sessions:
                return []
            session_id = next(reversed(self._sessions))
        session = self._sessions.get(session_id)
        return list(session.turns) if session is not None else []

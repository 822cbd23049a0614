"""ScriptedBidiModel: an offline Strands ``BidiModel`` that answers from a script.

It implements the SDK's model interface for real (``start``, ``send``, ``receive``,
``stop``, ``get_config``, ``update_config``), so the real ``BidiAgent`` loop runs on it:
history, tool execution, barge-in bookkeeping, connection restarts. No network, no
credentials, and the same answers every time. What it says is decided by a
:class:`~nbstream.strands.script.Script`; how the events are built is in
:mod:`nbstream.strands.reply`; this module only paces them and listens while speaking.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from strands.bidi.models import (
    AudioConfig,
    AudioStreamConfig,
    BidiModel,
    ConnectionTimeoutError,
)
from strands.bidi.types import AudioDelta, BidiMessage
from strands.bidi.types.events import BidiConnectionStartEvent, BidiOutputEvent
from strands.types.content import Messages
from strands.types.tools import ToolResultBlock, ToolSpec, ToolUse

from nbstream.strands.inbox import (
    Closed,
    Connection,
    Inbound,
    Utterance,
    is_tool_results,
    is_user_input,
    result_text,
    utterance,
)
from nbstream.strands.reply import (
    Modality,
    Reply,
    Voice,
    pcm_seconds,
    spoken_reply,
    tool_reply,
    user_transcript,
)
from nbstream.strands.script import Pick, Script, Turn, fill

PARAMS = frozenset({"pace", "audio_gap", "chunk_ms", "modalities"})
"""The settings ``update_config(params={...})`` may change."""


class ScriptedModelError(RuntimeError):
    """The model's connection failed because its script said so (a ``fail`` turn)."""


@dataclass
class _ToolWait:
    """A turn waiting for its tools' results before it speaks."""

    pick: Pick
    ids: tuple[str, ...]
    results: dict[str, str] = field(default_factory=dict)


class ScriptedBidiModel(BidiModel):
    """A deterministic, offline bidirectional model for the real ``BidiAgent``.

    ``BidiAgent(model=ScriptedBidiModel(script), tools=[...])`` then run the agent as
    with any provider. Text input is answered at once; audio input (16-bit PCM) when
    ``audio_gap`` seconds pass without more audio, like a provider's voice activity
    detection, with a user transcript of its length first. Answers stream a word per
    ``pace`` seconds. New user input while it speaks stops the response: a
    ``bidi_barge_in``, the open streams' stops, then ``bidi_response_stop``.

    Args:
        script: Turns (see :mod:`nbstream.strands.script`), or a ``Script``.
        pace: Seconds between two spoken words; 0 streams as fast as the agent reads.
        modalities: ``"audio"`` (PCM chunks with an assistant transcript), ``"text"``
            (text deltas), or both.
        sample_rate: Output audio sample rate in Hz.
        input_sample_rate: The PCM sample rate it expects from the user.
        chunk_ms: Milliseconds of synthetic audio per spoken word.
        audio_gap: Seconds without audio that end a user's audio turn.
        model_id: What ``bidi_connection_start`` reports as the model.
        auto_restart: False makes a ``timeout`` turn end the agent's ``receive()`` with
            ``ConnectionTimeoutError`` instead of a connection restart.
    """

    def __init__(self, script: Script | Iterable[Turn | str | Mapping[str, Any]] = (), *,
                 pace: float = 0.05, modalities: Iterable[Modality] = ("audio", "text"),
                 sample_rate: int = 16_000, input_sample_rate: int = 16_000,
                 chunk_ms: int = 40, audio_gap: float = 0.3,
                 model_id: str = "nbstream-scripted", auto_restart: bool = True) -> None:
        self.script = script if isinstance(script, Script) else Script(script)
        self.voice = Voice(sample_rate=sample_rate)
        self.pace = 0.0
        self.audio_gap = 0.0
        self.input_sample_rate = input_sample_rate
        self._model_id = model_id
        self._auto_restart = auto_restart
        self._apply({"pace": pace, "audio_gap": audio_gap, "chunk_ms": chunk_ms,
                     "modalities": modalities})
        self._connection: Connection | None = None
        self._played = 0
        self._counter = 0
        self._waiting: dict[str, _ToolWait] = {}
        self.connections = 0
        """How many times :meth:`start` opened a connection (restarts included)."""

    # -- configuration (the SDK's Model interface) --------------------------------------

    def _apply(self, params: Mapping[str, Any]) -> None:
        unknown = set(params) - PARAMS
        if unknown:
            raise ValueError(f"unknown params {sorted(unknown)}; use {sorted(PARAMS)}")
        if "pace" in params:
            self.pace = _non_negative("pace", params["pace"])
        if "audio_gap" in params:
            self.audio_gap = _non_negative("audio_gap", params["audio_gap"])
        if "chunk_ms" in params:
            chunk_ms = params["chunk_ms"]
            if not isinstance(chunk_ms, int) or chunk_ms < 1:
                raise ValueError("chunk_ms must be a positive integer")
            self.voice = replace(self.voice, chunk_ms=chunk_ms)
        if "modalities" in params:
            chosen = frozenset(params["modalities"])
            if not chosen or not chosen <= {"audio", "text"}:
                raise ValueError("modalities must be 'audio', 'text' or both")
            self.voice = replace(self.voice, modalities=chosen)

    def get_config(self) -> dict[str, Any]:
        """The model id, its pacing and voice settings, and its connection config."""
        return {
            "model_id": self._model_id,
            "params": {"pace": self.pace, "audio_gap": self.audio_gap,
                       "chunk_ms": self.voice.chunk_ms,
                       "modalities": sorted(self.voice.modalities)},
            "connection": {"auto_restart": self._auto_restart},
        }

    def update_config(self, **model_config: Any) -> None:
        """Change ``model_id`` or ``params`` (keys of :data:`PARAMS`); applies at once."""
        unknown = set(model_config) - {"model_id", "params"}
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; use model_id, params")
        self._apply(model_config.get("params") or {})
        if "model_id" in model_config:
            self._model_id = str(model_config["model_id"])

    def get_audio_config(self) -> AudioConfig:
        """Input and output audio: mono 16-bit PCM at the configured rates."""
        return AudioConfig(
            input=AudioStreamConfig(sample_rate=self.input_sample_rate, channels=1,
                                    format="pcm"),
            output=AudioStreamConfig(sample_rate=self.voice.sample_rate, channels=1,
                                     format="pcm"))

    # -- the connection ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a connection is open (between :meth:`start` and :meth:`stop`)."""
        return self._connection is not None

    @property
    def _connection_id(self) -> str | None:
        """The open connection's id; ``BidiAgent.cancel()`` reads this name for its
        ``bidi_connection_stop``."""
        return self._connection.id if self._connection is not None else None

    async def start(self, system_prompt: str | None = None, tools: list[ToolSpec] | None = None,
                    messages: Messages | None = None, **kwargs: Any) -> None:
        """Open a connection; every tool the script asks for must be among ``tools``.

        Raises:
            RuntimeError: if a connection is already open.
            ValueError: if the script calls a tool the agent does not have.
        """
        if self._connection is not None:
            raise RuntimeError("model already started | call stop before starting again")
        offered = {spec["name"] for spec in tools or ()}
        missing = self.script.tool_names - offered
        if missing:
            raise ValueError(f"the script calls {sorted(missing)} but the agent only has "
                             f"{sorted(offered)}: pass those tools to BidiAgent(tools=[...])")
        self._connection = Connection(f"scripted-{uuid.uuid4().hex[:8]}",
                                       asyncio.Queue(maxsize=256))
        self.connections += 1

    async def stop(self) -> None:
        """Close the connection; its ``receive()`` returns. Safe to call twice."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def send(self, content: BidiMessage | AudioDelta) -> None:
        """Take a user message, tool results or an audio chunk (waits while 256 are queued).

        Raises:
            RuntimeError: if the model is not started.
            ValueError: for anything else than a ``BidiMessage`` or an ``AudioDelta``.
        """
        connection = self._connection
        if connection is None:
            raise RuntimeError("model not started | call start before sending")
        if not isinstance(content, BidiMessage | AudioDelta) or (
                isinstance(content, BidiMessage) and not content.content):
            raise ValueError(f"content_type=<{type(content).__name__}> | content not supported")
        await connection.inbox.put(content)

    async def receive(self) -> AsyncIterator[BidiOutputEvent]:
        """The connection's events: a connection start, then the answers to what it hears.

        Raises:
            RuntimeError: if the model is not started.
            ScriptedModelError: when a ``fail`` turn is reached.
            ConnectionTimeoutError: when a ``timeout`` turn is reached.
        """
        connection = self._connection
        if connection is None:
            raise RuntimeError("model not started | call start before receiving")
        yield BidiConnectionStartEvent(connection.id, self._model_id)
        while not connection.closed:
            item = (connection.backlog.popleft() if connection.backlog
                    else await connection.inbox.get())
            if isinstance(item, Closed):
                return
            reply: Reply | None
            if isinstance(item, AudioDelta):
                heard = await self._listen(connection, item)
                if heard is None:
                    return
                self._counter += 1
                for event in user_transcript(f"heard-{self._counter}", heard.words):
                    yield event
                reply = self._answer(self.script.pick(heard.words, self._played,
                                                      seconds=heard.seconds, size=heard.size))
            elif is_tool_results(item):
                reply = self._resume(item)
            else:
                said = utterance(item)
                reply = self._answer(self.script.pick(said.words, self._played))
            if reply is not None:
                async for event in self._play(connection, reply):
                    yield event

    # -- what it does with an input ------------------------------------------------------

    def _next_response_id(self) -> str:
        self._counter += 1
        return f"response-{self._counter}"

    def _answer(self, pick: Pick) -> Reply:
        if pick.fallback:
            self._played += 1
        turn, fields = pick.turn, pick.fields
        if turn.fail is not None:
            raise ScriptedModelError(turn.fail)
        if turn.timeout:
            raise ConnectionTimeoutError("scripted connection timeout")
        response_id = self._next_response_id()
        if not turn.tools:
            return spoken_reply(response_id, fill(turn.say, fields), self.voice,
                                len(str(fields["text"]).split()))
        uses = []
        for call in turn.tools:
            self._counter += 1
            uses.append(ToolUse(toolUseId=f"tool-{self._counter}", name=call.name,
                                input=fill(call.input, fields)))
        wait = _ToolWait(pick, tuple(use["toolUseId"] for use in uses))
        for tool_id in wait.ids:
            self._waiting[tool_id] = wait
        return tool_reply(response_id, uses)

    def _resume(self, message: BidiMessage) -> Reply | None:
        """Speak a tool turn's answer once all of its tools' results are back."""
        wait = None
        for block in message.content:
            if isinstance(block, ToolResultBlock) and block.tool_use_id in self._waiting:
                wait = self._waiting.pop(block.tool_use_id)
                wait.results[block.tool_use_id] = result_text(block)
        if wait is None or len(wait.results) < len(wait.ids):
            return None
        fields = {**wait.pick.fields, "result": "; ".join(wait.results[i] for i in wait.ids)}
        return spoken_reply(self._next_response_id(), fill(wait.pick.turn.say, fields),
                            self.voice)

    async def _next(self, connection: Connection, timeout: float) -> Inbound | None:
        """The next input within ``timeout`` seconds, or None."""
        try:
            if timeout <= 0:
                return connection.inbox.get_nowait()
            async with asyncio.timeout(timeout):
                return await connection.inbox.get()
        except (TimeoutError, asyncio.QueueEmpty):
            return None

    async def _listen(self, connection: Connection, first: AudioDelta) -> Utterance | None:
        """Collect audio until ``audio_gap`` seconds pass without any; None if closed."""
        size = len(first.source.get("bytes", b""))
        audio_format = first.format
        while True:
            item = await self._next(connection, self.audio_gap)
            if item is None:
                break
            if isinstance(item, Closed):
                connection.closed = True
                return None
            if isinstance(item, AudioDelta):
                size += len(item.source.get("bytes", b""))
            else:
                connection.backlog.append(item)  # answered after this utterance
        if audio_format == "pcm":
            seconds = pcm_seconds(size, self.input_sample_rate)
            return Utterance(f"({seconds:.2f} s of audio)", seconds, size)
        return Utterance(f"({size} bytes of {audio_format} audio)", 0.0, size)

    async def _play(self, connection: Connection, reply: Reply) -> AsyncIterator[BidiOutputEvent]:
        """Stream a reply a beat per ``pace``; stop it if the user speaks meanwhile."""
        for event in reply.opening:
            yield event
        loop = asyncio.get_running_loop()
        for beat in reply.beats:
            deadline = loop.time() + self.pace
            while True:
                item = await self._next(connection, deadline - loop.time())
                if item is None:
                    break
                if isinstance(item, Closed):
                    connection.closed = True
                    return
                connection.backlog.append(item)
                if is_user_input(item):
                    for event in reply.interrupted():
                        yield event
                    return
            for event in beat:
                yield event
        for event in reply.closing:
            yield event

    def __repr__(self) -> str:
        state = "open" if self.connected else "closed"
        return (f"<nbstream.strands.ScriptedBidiModel {len(self.script)} turns, "
                f"pace {self.pace} s, {state}>")


def _non_negative(name: str, value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a number of seconds, 0 or more")
    return float(value)

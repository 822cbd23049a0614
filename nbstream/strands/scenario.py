"""``conversation(turns=[...])``: a load-test scenario in which every user talks to its agent.

``load_test(server, scenario=nbstream.strands.conversation(turns=[...]))`` makes each
connection a user that plays the turns in order, every iteration, and records per
turn, as rows of ``LoadResult.steps`` named ``<turn>/<figure>``:

* ``first_transcript``: from the input to the first assistant transcript delta;
* ``first_audio``: from the input to the first audio delta;
* ``response``: from the input to the end of the answer (tools included);
* ``barge_in``: from the interrupting input to the agent's ``bidi_barge_in``;
* ``tool_round_trip``: from the model asking for tools to their last result.

A turn is plain data: ``"what is 6*7"`` (say it), ``{"say": ..., "expect": ...}``
(and check the answer contains ``expect``), ``{"audio": 1.0}`` (a second of PCM),
``{"say": "tell me a story", "interrupt": "stop!"}`` (barge in after the first audio
chunk, or ``after`` chunks), ``{"pause": 0.5}`` (think time). Any turn may have a
``name``; the default is ``turn<k>``. A failed turn is an error row of its
``response`` and ends the iteration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nbstream.protocol import StreamClosed, StreamError
from nbstream.strands.client import BYTES_PER_SAMPLE, AgentClient, MessageClient
from nbstream.strands.received import AgentEvent, AgentTurn

TURN_KEYS = frozenset({"say", "audio", "sample_rate", "interrupt", "after", "pause",
                       "expect", "name", "timeout"})
"""The keys a turn written as a dict may have."""
FIGURES = ("first_transcript", "first_audio", "response", "barge_in", "tool_round_trip")
"""What each turn records (when it happens), in this order."""


class LoadUser(Protocol):
    """What the scenario uses of a load test's ``user`` (``nbstream.loadtest.User``)."""

    client: MessageClient
    state: dict[str, Any]

    def record(self, step: str, seconds: float, error: str | None = None) -> None: ...

    def check(self, name: str, ok: object) -> bool: ...

    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class ConversationTurn:
    """One turn of a :func:`conversation`; see the module docstring for the keys."""

    name: str
    say: str | None = None
    audio: float = 0.0
    sample_rate: int = 16_000
    interrupt: str | None = None
    after: int = 1
    pause: float = 0.0
    expect: str | None = None
    timeout: float | None = None

    @classmethod
    def from_data(cls, index: int, data: str | Mapping[str, Any]) -> ConversationTurn:
        """A turn from a string or a dict (``index`` names it ``turn<index>`` by default).

        Raises:
            ValueError: naming the turn and what is wrong with it.
        """
        name = f"turn{index}"
        if isinstance(data, str):
            return cls(name, say=data)
        if not isinstance(data, Mapping):
            raise ValueError(f"turn {index}: a string or a dict, not {type(data).__name__}")
        unknown = sorted(set(data) - TURN_KEYS)
        if unknown:
            raise ValueError(f"turn {index}: unknown keys {unknown}; use {sorted(TURN_KEYS)}")
        kinds = [key for key in ("say", "audio", "pause") if key in data]
        if len(kinds) != 1:
            raise ValueError(f"turn {index}: give exactly one of 'say', 'audio', 'pause'")
        turn = cls(str(data.get("name", name)), say=data.get("say"),
                   audio=float(data.get("audio", 0.0)),
                   sample_rate=int(data.get("sample_rate", 16_000)),
                   interrupt=data.get("interrupt"), after=int(data.get("after", 1)),
                   pause=float(data.get("pause", 0.0)), expect=data.get("expect"),
                   timeout=data.get("timeout"))
        if turn.say is not None and not (isinstance(turn.say, str) and turn.say.strip()):
            raise ValueError(f"turn {index}: 'say' must be non-empty text")
        if "audio" in data and not (0 < turn.audio <= 60 and math.isfinite(turn.audio)):
            raise ValueError(f"turn {index}: 'audio' is seconds of speech, more than 0")
        if turn.interrupt is not None and (turn.say is None or turn.after < 1):
            raise ValueError(f"turn {index}: 'interrupt' goes with 'say', after 1 or more "
                             "audio chunks")
        if turn.pause < 0:
            raise ValueError(f"turn {index}: 'pause' must be 0 or more seconds")
        if turn.expect is not None and not isinstance(turn.expect, str):
            raise ValueError(f"turn {index}: 'expect' is text the answer should contain")
        if turn.timeout is not None and not (isinstance(turn.timeout, int | float)
                                             and turn.timeout > 0):
            raise ValueError(f"turn {index}: 'timeout' is seconds, more than 0")
        return turn


class ConversationFlow:
    """The scenario :func:`conversation` returns: ``await flow(user)`` plays every turn.

    Picklable (a class, not a closure), so that load tests in worker processes get it.
    """

    def __init__(self, turns: Sequence[ConversationTurn]) -> None:
        self.turns = tuple(turns)

    async def __call__(self, user: LoadUser) -> None:
        """One iteration: every turn in order; a failed turn ends it."""
        agent = user.state.get("agent")
        if not isinstance(agent, AgentClient):
            agent = user.state["agent"] = AgentClient(user.client)
        for turn in self.turns:
            if turn.pause:
                await user.sleep(turn.pause)
                continue
            try:
                answer = await self._play(agent, turn, user)
            except (StreamError, StreamClosed, TimeoutError) as exc:
                user.record(f"{turn.name}/response", 0.0, error=_code(exc))
                return
            self._record(user, turn, answer)

    async def _play(self, agent: AgentClient, turn: ConversationTurn,
                    user: LoadUser) -> AgentTurn:
        sent_at = time.monotonic()
        if turn.audio:
            samples = round(turn.audio * turn.sample_rate)
            await agent.asend_audio(bytes(BYTES_PER_SAMPLE * samples), turn.sample_rate)
            return await agent.aresponse(turn.timeout, since=sent_at)
        assert turn.say is not None
        if turn.interrupt is None:
            return await agent.aturn(turn.say, turn.timeout)
        await agent.asay(turn.say)
        story: list[AgentEvent] = []
        chunks = 0
        while chunks < turn.after and not (story and story[-1].type == "bidi_response_stop"):
            story.append(await agent.anext_event(turn.timeout))
            chunks += story[-1].type == "bidi_audio_delta"
        cut = await agent.ainterrupt(turn.interrupt, turn.timeout)
        user.check(f"{turn.name} barged in", cut.interrupted)
        answer = await agent.aresponse(turn.timeout, since=cut.interrupted_at)
        return AgentTurn(story + cut.events + answer.events, sent_at, cut.interrupted_at)

    def _record(self, user: LoadUser, turn: ConversationTurn, answer: AgentTurn) -> None:
        for figure, seconds in answer.timings().items():
            if seconds is not None:
                user.record(f"{turn.name}/{_FIGURE_OF.get(figure, figure)}", seconds)
        said = answer.transcript or answer.text
        user.check(f"{turn.name} answered", said or answer.tools)
        if turn.expect is not None:
            user.check(f"{turn.name} says {turn.expect!r}", turn.expect in said)

    def __repr__(self) -> str:
        return f"<nbstream.strands.conversation of {len(self.turns)} turns>"


_FIGURE_OF = {"duration": "response"}


def _code(exc: BaseException) -> str:
    if isinstance(exc, StreamError):
        return str(exc.code)
    if isinstance(exc, StreamClosed):
        return f"CLOSED_{exc.code}"
    return "TIMEOUT"


def conversation(turns: Sequence[str | Mapping[str, Any]]) -> ConversationFlow:
    """A load-test scenario: each user plays ``turns`` with its own agent.

    Args:
        turns: Plain data, one item per turn (see the module docstring), e.g.
            ``["hello", {"say": "what is 6*7", "expect": "42"}, {"audio": 1.0},
            {"say": "tell me a story", "interrupt": "stop!"}]``.

    Returns:
        The flow for ``load_test(server, scenario=..., connections=...)``; each turn's
        figures are rows of ``result.steps`` and percentiles in ``result.summary()``.

    Raises:
        ValueError: naming a malformed turn.
    """
    if isinstance(turns, str | bytes) or not turns:
        raise ValueError("conversation(turns=[...]): give a list of one or more turns")
    parsed = [ConversationTurn.from_data(index, data)
              for index, data in enumerate(turns, start=1)]
    names = [turn.name for turn in parsed if not turn.pause]
    if len(set(names)) != len(names):
        raise ValueError(f"conversation(turns=[...]): turn names repeat: {names}")
    return ConversationFlow(parsed)

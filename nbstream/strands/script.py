"""Scripts for :class:`~nbstream.strands.ScriptedBidiModel`: plain data, checked early.

A script is a list of turns a teacher can write in a cell::

    script = [
        {"when": r"what is (?P<expr>[-+*/ 0-9.()]+)", "tool": "calculator",
         "input": {"expression": "{expr}"}, "say": "{expr} is {result}."},
        {"when": "of audio", "say": "I heard {seconds:.1f} seconds of audio."},
        {"when": "crash", "fail": "the model fell over"},
        {"when": "hang up", "timeout": True},
        "Hello! Ask me a sum.",          # a bare string: a turn that just speaks
    ]

For each user input the model takes the first turn whose ``when`` (a regular
expression, case-insensitive) matches the user's words; if none does, the turns
without ``when`` answer in order, round and round; if there are none, it says
``"You said: {text}"``. Templates in ``say`` and in string values of ``input`` may use
``{text}`` (the user's words), ``{seconds}`` and ``{bytes}`` (audio input, else 0), the
named groups of ``when``, and, in ``say`` after a tool, ``{result}`` (the tool results'
text). Nothing here does I/O.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

TURN_KEYS = frozenset({"say", "when", "tool", "input", "tools", "fail", "timeout"})
"""The keys a turn written as a dict may have."""
INPUT_FIELDS = frozenset({"text", "seconds", "bytes"})
"""Template fields every turn may use."""
DEFAULT_SAY = "You said: {text}"
"""What the model says when no turn answers."""


def _fields(template: str) -> set[str]:
    """The field names a ``str.format`` template uses (``{expr}``, ``{seconds:.1f}``)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from None
    names = set()
    for _, name, _, _ in parsed:
        if name is None:
            continue
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        if not base or base.isdigit():
            raise ValueError(f"template {template!r}: use named fields such as {{text}}, "
                             "not positional ones")
        names.add(base)
    return names


def _templates(value: Any) -> Iterable[str]:
    """Every string inside a tool input (dicts and lists walked)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _templates(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _templates(item)


def fill(value: Any, fields: Mapping[str, Any]) -> Any:
    """``value`` with every template string in it formatted with ``fields``."""
    if isinstance(value, str):
        return value.format_map(fields)
    if isinstance(value, Mapping):
        return {key: fill(item, fields) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [fill(item, fields) for item in value]
    return value


@dataclass(frozen=True)
class ToolCall:
    """One tool the model asks for: the tool's name and its input (may hold templates)."""

    name: str
    input: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Turn:
    """One scripted answer. Build it from data with :meth:`from_data`.

    Attributes:
        say: What the model speaks (a template).
        when: A regular expression searched in the user's words; None answers anything
            (in order, after the turns with ``when``).
        tools: Tools the model asks for before speaking; ``say`` is spoken once their
            results are back, with ``{result}``.
        fail: Instead of answering, the model's connection fails with this message.
        timeout: Instead of answering, the model's connection times out (the agent
            restarts it, as it would with a real provider's connection limit).
    """

    say: str = ""
    when: str | None = None
    tools: tuple[ToolCall, ...] = ()
    fail: str | None = None
    timeout: bool = False

    def __post_init__(self) -> None:
        pattern = self.pattern
        allowed = set(INPUT_FIELDS) | set(pattern.groupindex if pattern is not None else ())
        for call in self.tools:
            if not isinstance(call.name, str) or not call.name:
                raise ValueError("a tool needs a name (a non-empty string)")
            for template in _templates(call.input):
                self._check(template, allowed)
        self._check(self.say, allowed | ({"result"} if self.tools else set()))
        if self.fail is not None and self.timeout:
            raise ValueError("a turn can fail or time out, not both")

    @staticmethod
    def _check(template: str, allowed: set[str]) -> None:
        unknown = _fields(template) - allowed
        if unknown:
            raise ValueError(f"template {template!r} uses {sorted(unknown)}; this turn "
                             f"knows {sorted(allowed)}")

    @property
    def pattern(self) -> re.Pattern[str] | None:
        """``when`` compiled (case-insensitive), or None."""
        if self.when is None:
            return None
        try:
            return re.compile(self.when, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"bad 'when' pattern {self.when!r}: {exc}") from None

    @classmethod
    def from_data(cls, data: Turn | str | Mapping[str, Any]) -> Turn:
        """A turn from a string (it just speaks) or a dict with the keys of :data:`TURN_KEYS`.

        Raises:
            ValueError: naming the unknown key or the bad value, so the cell can be fixed.
        """
        if isinstance(data, Turn):
            return data
        if isinstance(data, str):
            return cls(say=data)
        if not isinstance(data, Mapping):
            raise ValueError(f"a turn is a string or a dict, not {type(data).__name__}")
        unknown = set(data) - TURN_KEYS
        if unknown:
            raise ValueError(f"unknown turn keys {sorted(unknown)}; use {sorted(TURN_KEYS)}")
        if "tool" in data and "tools" in data:
            raise ValueError("give either 'tool' (with 'input') or 'tools', not both")
        if "input" in data and "tool" not in data:
            raise ValueError("'input' goes with 'tool'")
        calls: list[ToolCall] = []
        if "tool" in data:
            calls.append(ToolCall(data["tool"], _mapping(data.get("input", {}), "input")))
        for item in data.get("tools", ()):
            item = _mapping(item, "each of 'tools'")
            calls.append(ToolCall(item.get("name", ""), _mapping(item.get("input", {}),
                                                                 "a tool's input")))
        for key in ("say", "when", "fail"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ValueError(f"'{key}' must be a string")
        return cls(say=data.get("say", ""), when=data.get("when"), tools=tuple(calls),
                   fail=data.get("fail"), timeout=bool(data.get("timeout", False)))


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a dict")
    return value


class Pick(NamedTuple):
    """The turn that answers an input, and the template fields it is filled with."""

    turn: Turn
    fields: dict[str, Any]
    fallback: bool
    """True when an ordered turn (one without ``when``) answered: the caller moves on."""


class Script:
    """An ordered list of turns; :meth:`pick` chooses the one that answers.

    Args:
        turns: Turns, strings or dicts (see the module docstring).

    Raises:
        ValueError: if a turn is malformed (the message says which one and why).
    """

    def __init__(self, turns: Iterable[Turn | str | Mapping[str, Any]] = ()) -> None:
        parsed = []
        for index, data in enumerate(turns):
            try:
                parsed.append(Turn.from_data(data))
            except ValueError as exc:
                raise ValueError(f"turn {index}: {exc}") from None
        self.turns: tuple[Turn, ...] = tuple(parsed)
        self._matching = [(turn, turn.pattern) for turn in parsed if turn.when is not None]
        self._ordered = [turn for turn in parsed if turn.when is None]

    @property
    def tool_names(self) -> set[str]:
        """Every tool the script may ask for."""
        return {call.name for turn in self.turns for call in turn.tools}

    def pick(self, words: str, played: int, *, seconds: float = 0.0,
             size: int = 0) -> Pick:
        """The turn answering ``words``; ``played`` counts ordered turns played so far.

        Args:
            words: The user's text (or the transcript of their audio).
            played: How many ordered turns answered before (the caller keeps count,
                adding one whenever :attr:`Pick.fallback` is true).
            seconds: Length of the audio input, 0 for text.
            size: Bytes of the audio input, 0 for text.
        """
        fields: dict[str, Any] = {"text": words, "seconds": seconds, "bytes": size}
        for turn, pattern in self._matching:
            assert pattern is not None  # only turns with ``when`` are kept here
            found = pattern.search(words)
            if found is not None:
                groups = {k: v if v is not None else "" for k, v in found.groupdict().items()}
                return Pick(turn, {**fields, **groups}, False)
        if self._ordered:
            return Pick(self._ordered[played % len(self._ordered)], fields, True)
        return Pick(Turn(say=DEFAULT_SAY), fields, False)

    def __len__(self) -> int:
        return len(self.turns)

    def __repr__(self) -> str:
        return f"<nbstream.strands.Script of {len(self.turns)} turns>"

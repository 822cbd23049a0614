"""Scripts: plain data checked early, and which turn answers what."""

from __future__ import annotations

from typing import Any

import pytest

from nbstream.strands import Script, ToolCall, Turn
from nbstream.strands.reply import Voice, pcm_seconds, spoken_reply, tone
from nbstream.strands.script import fill


def test_strings_and_dicts_become_turns() -> None:
    script = Script([
        "Hello!",
        {"when": r"what is (?P<expr>.+)", "tool": "calculator",
         "input": {"expression": "{expr}"}, "say": "{expr} is {result}"},
        {"tools": [{"name": "a"}, {"name": "b", "input": {"x": ["{text}"]}}], "say": "{result}"},
        {"when": "crash", "fail": "boom"},
        {"when": "hang up", "timeout": True},
    ])
    assert script.turns[0] == Turn(say="Hello!")
    assert script.turns[1].tools == (ToolCall("calculator", {"expression": "{expr}"}),)
    assert [c.name for c in script.turns[2].tools] == ["a", "b"]
    assert script.tool_names == {"calculator", "a", "b"}
    assert len(script) == 5 and "5 turns" in repr(script)


BAD: list[tuple[Any, str]] = [
    (42, "a string or a dict"),
    ({"sya": "hi"}, "unknown turn keys ['sya']"),
    ({"tool": "a", "tools": []}, "either 'tool'"),
    ({"input": {}}, "'input' goes with 'tool'"),
    ({"tool": "a", "input": 3}, "input must be a dict"),
    ({"tools": ["a"]}, "each of 'tools' must be a dict"),
    ({"tool": ""}, "needs a name"),
    ({"say": 3}, "'say' must be a string"),
    ({"when": "(", "say": "x"}, "bad 'when' pattern"),
    ({"say": "{result}"}, "uses ['result']"),
    ({"say": "{nope}"}, "uses ['nope']"),
    ({"say": "{0}"}, "named fields"),
    ({"say": "{text"}, "bad template"),
    ({"tool": "a", "input": {"q": "{who}"}}, "uses ['who']"),
    ({"fail": "x", "timeout": True}, "fail or time out"),
]


@pytest.mark.parametrize(("data", "reason"), BAD, ids=[r for _, r in BAD])
def test_malformed_turns_say_which_and_why(data: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=r"turn 1: ") as caught:
        Script(["fine", data])
    assert reason in str(caught.value)


def test_matching_turns_first_then_ordered_turns_round_and_round() -> None:
    script = Script(["one", {"when": r"\bsum\b", "say": "sums!"}, "two"])
    assert script.pick("a SUM please", 0).turn.say == "sums!"
    assert not script.pick("a SUM please", 0).fallback
    answers = [script.pick("anything", played) for played in range(3)]
    assert [a.turn.say for a in answers] == ["one", "two", "one"]
    assert all(a.fallback for a in answers)
    assert Script().pick("hey", 0).turn.say == "You said: {text}"


def test_fields_hold_the_words_the_audio_and_the_groups() -> None:
    script = Script([{"when": r"call (?P<who>\w+)(?P<rest> now)?", "say": "{who}{rest}"}])
    pick = script.pick("Call Bob", 0, seconds=1.5, size=48_000)
    assert pick.fields == {"text": "Call Bob", "seconds": 1.5, "bytes": 48_000, "who": "Bob",
                           "rest": ""}
    assert fill({"a": ["{who}", 3], "b": "{seconds:.1f}"}, pick.fields) == {
        "a": ["Bob", 3], "b": "1.5"}


def test_a_spoken_reply_has_a_beat_per_word() -> None:
    reply = spoken_reply("r1", "two words", Voice(frozenset({"text"})), input_tokens=4)
    assert [e["type"] for e in reply.opening] == ["bidi_response_start", "bidi_text_start"]
    assert [[e["delta"] for e in beat] for beat in reply.beats] == [["two"], [" words"]]
    assert [e["type"] for e in reply.closing] == ["bidi_text_stop", "bidi_usage",
                                                  "bidi_response_stop"]
    assert [e["type"] for e in reply.interrupted()] == ["bidi_barge_in", "bidi_text_stop",
                                                        "bidi_response_stop"]
    silent = spoken_reply("r2", "", Voice())
    assert [e["type"] for e in silent.opening + silent.closing] == [
        "bidi_response_start", "bidi_usage", "bidi_response_stop"]


def test_synthetic_audio_is_pcm_of_the_asked_length() -> None:
    pcm = tone(220, 40, 16_000)
    assert len(pcm) == 1_280 and pcm_seconds(len(pcm), 16_000) == pytest.approx(0.04)
    assert int.from_bytes(pcm[2:4], "little", signed=True) > 0  # a rising sine, little-endian

"""conversation(turns=[...]) under load_test: every figure of every turn, from real agents."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import pytest

import nbstream
from nbstream.strands import conversation
from tests.bidi.conftest import AgentServer, agent_on

SCENARIOS = "scenario" in inspect.signature(nbstream.aload_test).parameters
needs_scenarios = pytest.mark.skipif(not SCENARIOS, reason="load_test(scenario=) is issue 11's")


@needs_scenarios
@pytest.mark.timeout(120)
async def test_a_conversation_reports_each_turns_figures(agent_server: AgentServer) -> None:
    server = await agent_server(lambda: agent_on(pace=0.005, audio_gap=0.05))
    flow = conversation(turns=[
        {"say": "what is 6*7", "expect": "42", "name": "sum"},
        {"audio": 0.5, "name": "listen"},
        {"pause": 0.01},
        {"say": "tell me a story", "interrupt": "stop!", "name": "story"},
    ])
    result = await nbstream.aload_test(server, scenario=flow, connections=4, iterations=2,
                                       progress=False)
    steps = result.steps
    expected = {"sum/first_transcript", "sum/first_audio", "sum/response",
                "sum/tool_round_trip", "listen/first_transcript", "listen/first_audio",
                "listen/response", "story/first_transcript", "story/first_audio",
                "story/response", "story/barge_in"}
    assert set(steps.index) == expected
    assert (steps["count"] == 8).all() and (steps["errors"] == 0).all()
    barge_in, response = steps.loc["story/barge_in", "p99"], steps.loc["story/response", "p50"]
    assert isinstance(barge_in, float) and isinstance(response, float)  # float64 seconds
    assert barge_in < response
    checks = result.checks
    assert (checks["fails"] == 0).all() and checks["passes"].sum() == 8 * 5
    assert "sum says '42'" in checks.index and "story barged in" in checks.index
    summary = result.summary()
    assert "step.story/barge_in.p99" in summary.index


@needs_scenarios
async def test_a_failing_turn_is_an_error_row_and_ends_the_iteration(
        agent_server: AgentServer) -> None:
    server = await agent_server()
    flow = conversation(turns=[{"say": "crash", "name": "boom"}, "hello"])
    result = await nbstream.aload_test(server, scenario=flow, connections=2, iterations=1,
                                       progress=False)
    assert result.steps.loc["boom/response", "errors"] == 2
    assert "turn2/response" not in result.steps.index


def test_turns_are_checked_when_the_scenario_is_made() -> None:
    flow = conversation(turns=["hi", {"audio": 1.5}, {"say": "x", "interrupt": "y"}])
    assert [t.name for t in flow.turns] == ["turn1", "turn2", "turn3"]
    assert pickle.loads(pickle.dumps(flow)).turns == flow.turns  # travels to workers
    assert "3 turns" in repr(flow)
    refused: list[tuple[Any, str]] = [  # not turns: conversation() must refuse them
        ([], "one or more"),
        ("hello", "one or more"),
        ([{"say": "x", "audio": 1}], "exactly one"),
        ([{"sing": "x"}], "unknown keys"),
        ([{"audio": -1}], "seconds of speech"),
        ([{"say": " "}], "non-empty"),
        ([{"audio": 1, "interrupt": "stop"}], "goes with 'say'"),
        ([{"pause": -1}], "0 or more"),
        (["a", {"say": "b", "name": "turn1"}], "repeat"),
        ([42], "a string or a dict"),
        ([{"say": "x", "expect": 42}], "'expect' is text"),
        ([{"say": "x", "timeout": 0}], "'timeout' is seconds"),
    ]
    for turns, message in refused:
        with pytest.raises(ValueError, match=message):
            conversation(turns=turns)

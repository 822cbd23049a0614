"""The fault vocabulary: every mistake in proxy.add(...) gets a message saying what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbstream.faults.vocabulary import KINDS, make_fault


@pytest.mark.parametrize(("name", "params", "expected"), [
    ("latancy", {}, "no fault named 'latancy'; known: latency, bandwidth"),
    ("latency", {}, "latency needs ms=..."),
    ("latency", {"ms": 50, "jitter": 5}, "latency has no parameter jitter; its parameters: "
                                          "ms, jitter_ms"),
    ("latency", {"ms": -1}, "ms must be a number at least 0, got -1"),
    ("latency", {"ms": float("nan")}, "ms must be a number"),
    ("bandwidth", {"kbps": 0}, "kbps must be a number above 0, got 0"),
    ("slicer", {"average_size": 0}, "average_size must be a whole number, at least 1"),
    ("limit_data", {"bytes": 1.5}, "bytes must be a whole number, at least 0"),
    ("corrupt", {"bytes": 0}, "bytes must be a whole number, at least 1"),
    ("drop", {"index": -1}, "index must be a whole number, at least 0 or None"),
    ("drop", {"times": 0}, "times must be a whole number, at least 1 or None"),
    ("drop", {"match": 3}, "match must be a message type such as 'end', a function"),
    ("stall", {"ms": "soon"}, "ms must be a number at least 0, got 'soon'"),
])
def test_mistakes_are_named(name: str, params: dict[str, object], expected: str) -> None:
    with pytest.raises(ValueError, match="^" + expected.replace("(", r"\(").replace(
            ")", r"\)").replace(".", r"\.").replace("?", r"\?")):
        make_fault("x", name, "down", 1.0, params)


def test_direction_and_probability_are_checked() -> None:
    with pytest.raises(ValueError, match=r"direction must be 'up' .* got 'sideways'"):
        make_fault("x", "drop", "sideways", 1.0, {})
    with pytest.raises(ValueError, match="probability must be a number from 0 to 1, got 2"):
        make_fault("x", "drop", "down", 2, {})


def test_defaults_fill_in_and_updates_are_checked_too() -> None:
    fault = make_fault("drop-1", "drop", "both", 0.5, {"match": "end"})
    assert fault.params == {"index": None, "match": "end", "times": None}
    assert fault.ways == ("up", "down")
    assert str(fault) == "drop both match=end probability=0.5"
    changed = fault.with_params(times=2, probability=1.0)
    assert changed.params["times"] == 2 and changed.probability == 1.0
    assert changed.tally is fault.tally  # the count of picked messages carries on
    with pytest.raises(ValueError, match="times must be"):
        fault.with_params(times=-3)


def test_docs_faults_md_has_a_row_for_every_fault_naming_its_toxiproxy_toxic() -> None:
    table = (Path(__file__).parents[2] / "docs" / "faults.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in table.splitlines()
            if line.startswith("| `")}
    assert set(rows) == set(KINDS)
    for kind in KINDS.values():
        assert kind.summary
        level = "TCP" if kind.layer == "tcp" else "WebSocket"
        assert f"| {level} |" in rows[kind.name], kind.name
        toxic = kind.toxiproxy.split(" ")[0] if kind.toxiproxy else "none"
        assert rows[kind.name].rstrip(" |").split("|")[-1].strip().startswith(
            f"`{toxic}`" if kind.toxiproxy else "none"), kind.name

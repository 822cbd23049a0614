"""docs/architecture.md draws its state and closing tables from the code's own tables."""

from __future__ import annotations

from pathlib import Path

from nbstream.protocol.closing import CLOSE_RULES
from nbstream.protocol.connection import TRANSITIONS, ConnState, Trigger

DOC = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()


def test_the_connection_state_table_is_the_codes() -> None:
    rows = ["| from \\ trigger | " + " | ".join(t.value for t in Trigger) + " |",
            "|---|" + "---|" * len(Trigger)]
    for state in ConnState:
        cells = [TRANSITIONS[state, t].value if (state, t) in TRANSITIONS else ""
                 for t in Trigger]
        rows.append(f"| {state.value} | " + " | ".join(cells) + " |")
    assert "\n".join(rows) in DOC


def test_the_closing_table_is_the_codes() -> None:
    rows = ["| code | meaning | session waits for a resume | blame (of the side that sent it) |",
            "|---:|---|---|---|"]
    rows += [f"| {code} | {rule.name} | {'yes' if rule.resumable else 'no'} | "
             f"{rule.blame.value} |" for code, rule in CLOSE_RULES.items()]
    assert "\n".join(rows) in DOC

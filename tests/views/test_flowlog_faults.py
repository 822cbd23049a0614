"""FlowLog folds a fault proxy's fault events into rows of their own, not messages."""

from __future__ import annotations

from nbstream.events import FlowEvent
from nbstream.views.flowlog import FlowLog


def test_a_fault_is_a_row_but_not_a_message() -> None:
    log = FlowLog()
    log.fold(FlowEvent("fault", "proxy", "s1", direction="s2c", at=1.0,
                       detail={"fault": "drop", "index": 3, "type": "end", "size": 90,
                               "direction": "down"}))
    assert log.total == 0 and log.counts == {}
    [row] = log.rows()
    assert (row.type, row.direction, row.size) == ("fault", "s2c", 90)
    assert row.preview == "drop index=3 type=end size=90 direction=down"
    assert log.rows(type="fault") == [row]


def test_a_frame_that_is_no_envelope_shows_its_payload() -> None:
    log = FlowLog()
    log.fold(FlowEvent("out", "proxy", "s1", direction="c2s", size=5, opcode=1,
                       payload="hello"))
    [row] = log.rows()
    assert (row.type, row.preview) == ("text", "hello")  # whatever its protocol

"""The event stream's "is anyone listening" flag, which data paths read every message."""

from __future__ import annotations

from nbstream import EventStream, FlowEvent


def test_listened_follows_subscribers_and_kept_events() -> None:
    stream = EventStream()
    seen: list[FlowEvent] = []
    assert not stream.listened and not stream
    stop = stream.subscribe(seen.append)
    assert stream.listened and stream
    stream.keep(10)
    stop()
    assert stream.listened and len(stream) == 1  # the kept events still listen
    stream.keep(0)
    assert not stream.listened and not stream
    stream.publish(FlowEvent("open", "client", "s"))
    assert seen == []

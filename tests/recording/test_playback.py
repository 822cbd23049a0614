"""A finished recording as flow events, and the clock-free core of playing it again."""

from __future__ import annotations

from nbstream.events import CLOSE, TEXT
from nbstream.recording import Frame, Recording, SessionInfo
from nbstream.recording.playback import Playback, flow_events
from tests.recording.helpers import T0


def chat() -> Recording:
    frames = [Frame(T0 + 0.1, "s1", "c2s", TEXT, "chat", 10, '{"type":"chat","data":{}}'),
              Frame(T0 + 0.3, "s1", "s2c", TEXT, "end", 10, '{"type":"end","data":{}}'),
              Frame(T0 + 0.4, "s1", "s2c", TEXT, None, 5, "not json"),
              Frame(T0 + 0.5, "s1", None, CLOSE, None, 0, "bye", 1000)]
    return Recording(frames, [SessionInfo("s1", user="ann", opened=T0)], start=T0,
                     protocol="nbstream")


def test_frames_become_the_events_a_server_would_have_published() -> None:
    events = flow_events(chat())
    assert [(e.kind, e.direction, e.message.type if e.message else None) for e in events] == \
        [("open", None, None), ("in", "c2s", "chat"), ("out", "s2c", "end"),
         ("out", "s2c", None), ("close", None, None)]
    assert {e.user for e in events} == {"ann"} and events[-1].detail == \
        {"code": 1000, "reason": "bye"}
    assert events[1].payload == '{"type":"chat","data":{}}' and events[1].size == 10


def test_seek_shows_everything_up_to_the_position() -> None:
    playback = Playback(flow_events(chat()))
    assert playback.duration == 0.5 and playback.finished
    assert [e.kind for e in playback.seek(0.3)] == ["open", "in", "out"]
    assert [e.kind for e in playback.seek(-4)] == ["open"] and playback.position == 0.0
    assert len(playback.seek(99)) == 5 and playback.position == 0.5


def test_advance_plays_at_a_speed() -> None:
    playback = Playback(flow_events(chat()), speed=2.0)
    playback.seek(0.0)
    assert [e.kind for e in playback.advance(0.05)] == ["in"]          # up to 0.1 s
    assert [e.kind for e in playback.advance(0.1)] == ["out"]          # up to 0.3 s
    assert [e.kind for e in playback.advance(1.0)] == ["out", "close"]
    assert playback.finished and playback.advance(1.0) == []


def test_an_empty_recording_plays_nothing() -> None:
    playback = Playback(flow_events(Recording()))
    assert playback.duration == 0.0 and playback.seek(1.0) == [] and playback.finished

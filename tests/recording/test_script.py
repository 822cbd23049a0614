"""What a replay sends when: offsets, think times, replies before and after each send."""

from __future__ import annotations

from nbstream.recording.frames import SessionInfo
from nbstream.recording.script import scripts
from nbstream.redact import REDACTED
from tests.recording.helpers import T0, recording, text


def test_sends_with_offsets_think_times_and_replies() -> None:
    rec = recording(
        text(0.0, "s2c", "welcome"),
        text(0.5, "c2s", "q1"),
        text(0.6, "s2c", "a1"), text(0.7, "s2c", "a1 end"),
        text(2.0, "c2s", "q2"),
        text(2.1, "s2c", "a2"),
        text(3.0, "c2s", "bye"),
    )
    [script] = scripts(rec.frames, list(rec.info.values()), rec.protocol)
    assert script.opened == 0.0 and script.replies == 4 and script.skipped == 0
    assert [(s.payload, s.offset, s.replies_before, s.replies_after)
            for s in script.sends] == [("q1", 0.5, 1, 2), ("q2", 2.0, 3, 1), ("bye", 3.0, 4, 0)]
    assert [round(s.think, 6) for s in script.sends] == [0.5, 1.3, 0.9]


def test_sessions_start_at_their_offset_from_the_first_one() -> None:
    rec = recording(text(1.0, "c2s", "a", session="early"),
                    text(4.0, "c2s", "b", session="late"))
    rec.info["late"] = SessionInfo("late", opened=T0 + 3.5)
    by_name = {s.session: s for s in scripts(rec.frames, list(rec.info.values()), rec.protocol)}
    assert by_name["early"].opened == 0.0
    assert by_name["late"].opened == 2.5 and by_name["late"].sends[0].offset == 3.0


def test_frames_with_redacted_secrets_are_counted_not_sent() -> None:
    rec = recording(text(0.0, "c2s", f'{{"type":"auth","data":{{"token":"{REDACTED}"}}}}'),
                    text(0.1, "c2s", "hello"))
    [script] = scripts(rec.frames, list(rec.info.values()), rec.protocol)
    assert script.skipped == 1 and [s.payload for s in script.sends] == ["hello"]


def test_no_frames_no_scripts() -> None:
    assert scripts([], [], "json") == []


def test_an_nbstream_heartbeat_is_neither_sent_nor_counted() -> None:
    frames = (text(0.0, "c2s", "q", kind="chat"), text(0.1, "s2c", "ping", kind="ping"),
              text(0.2, "c2s", "pong", kind="pong"), text(0.3, "s2c", "a", kind="end"))
    [script] = scripts(frames, [], "nbstream")
    assert [s.payload for s in script.sends] == ["q"]
    assert script.replies == 1 and script.sends[0].replies_after == 1
    [other] = scripts(frames, [], "json")  # another protocol's "ping" is a message
    assert [s.payload for s in other.sends] == ["q", "pong"] and other.replies == 2

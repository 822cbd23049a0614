"""FlowView on a recording: what was recorded, live on; a finished one seeks and plays."""

from __future__ import annotations

import nbstream
from nbstream.events import CLOSE, TEXT
from nbstream.recording import Frame, Recording, SessionInfo
from nbstream.views import FlowView
from nbstream.views.commlog import CommLog
from tests.conftest import ServerFactory
from tests.views.conftest import eventually

T0 = 1_800_000_000.0


def finished(close_at: float = 2.0) -> Recording:
    """A chat: open at 0, chat at 0.5, content at 1.0, end at 1.5, close at ``close_at``."""
    frames = [
        Frame(T0 + 0.5, "s1", "c2s", TEXT, "chat", 30, '{"type":"chat","data":{"text":"hi"}}'),
        Frame(T0 + 1.0, "s1", "s2c", TEXT, "content", 33,
              '{"type":"content","data":{"text":"hi"}}'),
        Frame(T0 + 1.5, "s1", "s2c", TEXT, "end", 20, '{"type":"end","data":{}}'),
        Frame(T0 + close_at, "s1", None, CLOSE, None, 0, "", 1000),
    ]
    return Recording(frames, [SessionInfo("s1", user="ann", opened=T0)], start=T0,
                     protocol="nbstream", source="chat.parquet")


def types(view: FlowView) -> list[str]:
    return [row[4] for row in view.rows]


async def test_a_finished_recording_shows_everything_and_seeks(comms: CommLog) -> None:
    view = FlowView(finished())
    await eventually(lambda: types(view) == ["open", "chat", "content", "end", "close"])
    assert (view.duration, view.position, view.playing) == (2.0, 2.0, False)
    assert view.title == "Recording chat.parquet" and view.session_users == {"s1": "ann"}
    view.seek(1.2)
    await eventually(lambda: types(view) == ["open", "chat", "content"])
    assert view.position == 1.2 and view.total == 2
    view.seek_to = 0.0  # what the scrubber does
    await eventually(lambda: types(view) == ["open"])
    assert view.seek_to == -1.0 and view.position == 0.0
    view.close()


async def test_play_draws_the_flow_again_at_a_speed(comms: CommLog) -> None:
    view = FlowView(finished())
    view.seek(0.0)
    view.speed = 4.0
    view.playing = True  # the play button
    await eventually(lambda: "content" in types(view) and view.playing)
    assert "end" not in types(view) or view.position >= 1.5
    await eventually(lambda: not view.playing)  # 2 s at 4x: about half a second
    await eventually(lambda: types(view) == ["open", "chat", "content", "end", "close"])
    assert view.position == 2.0
    view.playing = True  # from the end: starts again from the beginning
    await eventually(lambda: view.position < 2.0)
    view.playing = False
    stopped_at = view.position
    assert stopped_at < 2.0
    view.close()


async def test_play_ends_exactly_at_the_duration_the_browser_shows(comms: CommLog) -> None:
    view = FlowView(finished(close_at=1.5654999))  # 1.565 would read 1.56 against 1.57
    view.seek(1.4)
    view.speed = 4.0
    view.playing = True
    await eventually(lambda: not view.playing)
    await eventually(lambda: types(view)[-1] == "close")
    assert view.position == view.duration
    view.close()


async def test_a_live_recording_shows_what_came_before_and_follows(
        start_server: ServerFactory, comms: CommLog) -> None:
    server = await start_server("echo")
    rec = nbstream.record(server)
    client = await nbstream.aconnect(server)
    await client.achat("before the view")
    view = FlowView(rec)
    assert view.duration == 0.0  # no play controls while recording
    await eventually(lambda: types(view)[2:4] == ["chat", "content"])
    assert set(types(view)[:2]) == {"open", "welcome"}
    await client.achat("after")
    await eventually(lambda: types(view).count("chat") == 2)
    await client.aclose()
    rec.stop()
    view.close()

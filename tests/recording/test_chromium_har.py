"""HAR files Chromium itself wrote (Debian's chromium through Playwright) load, say what
the server saw, survive a round trip and replay against a fresh server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import nbstream
from nbstream import Recording
from nbstream.events import BINARY, TEXT
from tests.recording.chromium import capture_chat


@pytest.fixture
def agent() -> Iterator[nbstream.Server]:
    server = nbstream.serve("agent")
    yield server
    server.stop(timeout=1.0)


def data_frames(rec: Recording, direction: str) -> list[str | bytes | None]:
    return [f.payload for f in rec.frames if f.is_data and f.direction == direction]


def test_a_chromium_har_holds_what_the_server_saw(agent: nbstream.Server,
                                                   tmp_path: Path) -> None:
    with nbstream.record(agent) as seen_by_server:
        har = capture_chat(agent.url, tmp_path / "chat.har")
    rec = Recording.from_har(har)
    [session] = rec.info.values()
    assert (session.session, session.url, session.subprotocol) == \
        ("ws-1", agent.url, "nbstream.v1")
    types = [f.type for f in rec.frames]
    assert types[0] == "welcome" and types.count("chat") == 2 and types.count("end") == 2
    assert rec.frames[-2].opcode == BINARY and rec.frames[-2].payload == b"\x00\x01\x02\xfe\xff"
    assert rec.frames[-1].type == "error" and rec.frames[-1].opcode == TEXT
    for direction in ("c2s", "s2c"):
        assert data_frames(rec, direction) == data_frames(seen_by_server, direction)
    again = Recording.from_har(rec.to_har(tmp_path / "again.har"))
    assert again.frames == rec.frames and again.info == rec.info


def test_a_chromium_har_replays_against_a_fresh_server(agent: nbstream.Server,
                                                       tmp_path: Path) -> None:
    captured = Recording.from_har(capture_chat(agent.url, tmp_path / "chat.har"))
    fresh = nbstream.serve("agent")
    try:
        replayed = captured.replay(fresh, timing="wait")  # each send after its replies
    finally:
        fresh.stop(timeout=1.0)
    assert replayed.problems == []
    assert data_frames(replayed, "c2s") == data_frames(captured, "c2s")
    differences = captured.diff(replayed, tolerance=1.0)
    assert differences.empty, differences.to_string()

"""Recordings: keep any flow, open browser captures, replay them, turn them into load tests.

``rec = nbstream.record(server)`` fills live; ``rec.frame`` is the DataFrame;
``rec.save("chat.parquet")`` / ``nbstream.Recording.load(...)``;
``nbstream.Recording.from_har("capture.har")``; ``rec.replay(other_server)``;
``rec.diff(replayed)``; ``load_test(url, scenario=rec.to_scenario())``. See
docs/recordings.md.

Modules, one idea each: ``frames`` (what a recording holds), ``recorder`` (filling
live), ``recording`` (the public class), ``files`` (parquet, JSON Lines), ``har``,
``script`` (what a replay sends when), ``replayer``, ``compare`` (diffs),
``scenario`` (load tests).
"""

from nbstream.recording.frames import Frame, SessionInfo
from nbstream.recording.recording import Recording, record

__all__ = ["Frame", "Recording", "SessionInfo", "record"]

"""Saving and loading: parquet and JSON Lines are lossless; damage gets a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbstream import ErrorCode, Recording, StreamError
from nbstream.events import BINARY, CLOSE, PING, TEXT
from nbstream.recording import Frame, SessionInfo
from tests.recording.helpers import T0


def every_kind_of_frame() -> Recording:
    """Text (with non-ASCII), binary (every byte value), ping, close, unknown payload."""
    frames = [
        Frame(T0 + 0.000001, "s1", "s2c", TEXT, "welcome", 20, '{"type":"welcome"}'),
        Frame(T0 + 0.1, "s1", "c2s", TEXT, "chat", 31, '{"type":"chat","data":"héllo ✓"}'),
        Frame(T0 + 0.2, "s1", "c2s", BINARY, "binary", 256, bytes(range(256))),
        Frame(T0 + 0.25, "s1", "s2c", BINARY, "binary", 0, b""),
        Frame(T0 + 0.3, "s1", "s2c", PING, None, 2, b"p1"),
        Frame(T0 + 0.35, "s2", "s2c", TEXT, None, 7, None),
        Frame(T0 + 0.4, "s1", None, CLOSE, None, 0, "going away", 1001),
    ]
    sessions = [SessionInfo("s1", url="ws://127.0.0.1:9/ws", subprotocol="nbstream.v1",
                            user="ann", opened=T0, closed=T0 + 0.4, close_code=1001,
                            close_reason="going away"),
                SessionInfo("s2")]
    return Recording(frames, sessions, start=T0 - 0.5, protocol="nbstream",
                     source="server ws://127.0.0.1:9/ws", meta={"note": "made by hand"})


def assert_same(a: Recording, b: Recording) -> None:
    assert a.frames == b.frames
    assert a.info == b.info
    assert (a.start, a.protocol, a.source, a.meta) == (b.start, b.protocol, b.source, b.meta)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_save_and_load_lose_nothing(tmp_path: Path, suffix: str) -> None:
    original = every_kind_of_frame()
    path = original.save(tmp_path / f"rec{suffix}")
    loaded = Recording.load(path)
    assert_same(original, loaded)
    assert loaded.frame.equals(original.frame)
    assert isinstance(loaded.frame["payload"][2], bytes)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_secrets_are_redacted_when_saved_unless_asked_not_to(tmp_path: Path,
                                                              suffix: str) -> None:
    secret = Recording(
        [Frame(T0, "s1", "c2s", TEXT, "auth", 40, '{"type":"auth","data":{"token":"s3cret"}}'),
         Frame(T0 + 1, "s1", "c2s", BINARY, None, 6, b"s3cret")],
        [SessionInfo("s1", url="ws://h:1/ws?token=s3cret&room=7")],
        start=T0, source="client ws://h:1/ws?token=s3cret")
    saved = Recording.load(secret.save(tmp_path / f"a{suffix}"))
    text = str(saved.frames[0].payload) + str(saved.info["s1"].url) + saved.source
    assert "s3cret" not in text and "room=7" in text and '"type":"auth"' in text
    assert saved.frames[1].payload == b"s3cret"  # binary payloads are left as they are
    kept = Recording.load(secret.save(tmp_path / f"b{suffix}", redact=False))
    assert_same(secret, kept)


def test_other_suffixes_are_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.parquet or \.jsonl"):
        every_kind_of_frame().save(tmp_path / "rec.csv")
    assert not (tmp_path / "rec.csv").exists()


def test_a_truncated_jsonl_names_the_line_and_strict_false_keeps_the_rest(
        tmp_path: Path) -> None:
    path = every_kind_of_frame().save(tmp_path / "rec.jsonl")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 25])  # cut inside the last frame
    with pytest.raises(StreamError) as caught:
        Recording.load(path)
    error = caught.value
    assert error.code == ErrorCode.INVALID_RECORDING and error.details["line"] == 8
    assert "line 8" in str(error) and "truncated" in str(error) and "strict=False" in str(error)
    partial = Recording.load(path, strict=False)
    assert partial.frames == every_kind_of_frame().frames[:-1]
    assert len(partial.problems) == 1 and "line 8" in partial.problems[0]


def test_a_bad_line_in_the_middle_is_skipped_with_strict_false(tmp_path: Path) -> None:
    path = every_kind_of_frame().save(tmp_path / "rec.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = json.dumps({"at": 1.0, "session": "s1", "opcode": 2, "base64": "%%%"}) + "\n"
    path.write_text("".join(lines))
    with pytest.raises(StreamError, match="line 4"):
        Recording.load(path)
    loaded = Recording.load(path, strict=False)
    assert len(loaded) == len(every_kind_of_frame()) - 1


@pytest.mark.parametrize("content", [b"", b"not json\n", b'{"format":"other","version":1,'
                                     b'"start":0}\n'])
def test_a_file_that_is_not_a_recording(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    with pytest.raises(StreamError) as caught:
        Recording.load(path)
    assert caught.value.code == ErrorCode.INVALID_RECORDING and "x.jsonl" in str(caught.value)


def test_a_damaged_or_foreign_parquet_file(tmp_path: Path) -> None:
    path = every_kind_of_frame().save(tmp_path / "rec.parquet")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StreamError, match=r"rec\.parquet"):
        Recording.load(path)
    import pandas as pd

    foreign = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(foreign)
    with pytest.raises(StreamError, match="not an nbstream recording"):
        Recording.load(foreign)


def test_a_newer_format_version_asks_for_an_upgrade(tmp_path: Path) -> None:
    path = every_kind_of_frame().save(tmp_path / "rec.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    header["version"] = 99
    path.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    with pytest.raises(StreamError, match="upgrade nbstream"):
        Recording.load(path)

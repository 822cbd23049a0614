"""Recordings on disk: parquet and JSON Lines, chosen by the file's suffix.

Both hold the same thing, losslessly: a header (the format's name and version, the
start, the source, the protocol, each session's URL and close) and one record per
frame with its wall-clock time (epoch seconds, as a float64), session, direction,
opcode, type, size, close code and payload: ``text`` for a str, ``base64`` (JSON
Lines) or ``binary`` (parquet) for bytes. docs/recordings.md shows both.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from nbstream.recording.frames import (
    Frame,
    SessionInfo,
    invalid,
    redacted,
    redacted_session,
)
from nbstream.redact import redact_text

if TYPE_CHECKING:
    from nbstream.recording.recorder import Recorder

R = TypeVar("R", bound="Recorder")

FORMAT = "nbstream.recording"
VERSION = 1
SUFFIXES = (".parquet", ".jsonl")
_PARQUET_KEY = FORMAT.encode()


class Header(msgspec.Struct, forbid_unknown_fields=False):
    """The first line of a JSON Lines recording, the schema metadata of a parquet one."""

    format: str
    version: int
    start: float
    source: str = ""
    protocol: str = "json"
    sessions: list[SessionInfo] = msgspec.field(default_factory=list)
    meta: dict[str, Any] = msgspec.field(default_factory=dict)


class Line(msgspec.Struct, omit_defaults=True):
    """One frame as a line of JSON."""

    at: float
    session: str
    opcode: int
    direction: str | None = None
    type: str | None = None
    size: int = 0
    text: str | None = None
    base64: str | None = None
    close_code: int | None = None


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path.name}: a recording is saved as .parquet or .jsonl, "
                         f"not {suffix or 'a file without a suffix'!r}")
    return suffix


def _header(recorder: Recorder, redact: bool) -> Header:
    sessions = list(recorder.info.values())
    return Header(FORMAT, VERSION, recorder.start,
                  redact_text(recorder.source) if redact else recorder.source,
                  recorder.protocol,
                  [redacted_session(s) for s in sessions] if redact else sessions,
                  recorder.meta)


def save(recorder: Recorder, path: Path, *, redact: bool) -> Path:
    """Write ``recorder`` to ``path`` (.parquet or .jsonl); returns the path."""
    suffix = _suffix(path)
    frames = [redacted(f) for f in recorder.frames] if redact else recorder.frames
    header = _header(recorder, redact)
    if suffix == ".jsonl":
        _save_jsonl(path, header, frames)
    else:
        _save_parquet(path, header, frames)
    return path


def load(path: Path, cls: type[R], *, strict: bool) -> R:
    """Read a recording saved by :func:`save` as an instance of ``cls``."""
    suffix = _suffix(path)
    if suffix == ".jsonl":
        header, frames, problems = _load_jsonl(path, strict)
    else:
        header, frames, problems = _load_parquet(path), _parquet_frames(path), []
    recorder = cls(frames, header.sessions, start=header.start, protocol=header.protocol,
                   source=header.source, meta=header.meta)
    recorder.problems.extend(problems)
    return recorder


# -- JSON Lines -------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
_header_decoder = msgspec.json.Decoder(Header)
_line_decoder = msgspec.json.Decoder(Line)


def _line(frame: Frame) -> Line:
    payload = frame.payload
    return Line(frame.at, frame.session, frame.opcode, frame.direction, frame.type,
                frame.size, text=payload if isinstance(payload, str) else None,
                base64=base64.b64encode(payload).decode() if isinstance(payload, bytes)
                else None, close_code=frame.close_code)


def _save_jsonl(path: Path, header: Header, frames: list[Frame]) -> None:
    with path.open("wb") as out:
        out.write(_encoder.encode(header) + b"\n")
        for frame in frames:
            out.write(_encoder.encode(_line(frame)) + b"\n")


def _load_jsonl(path: Path, strict: bool) -> tuple[Header, list[Frame], list[str]]:
    with path.open("rb") as lines:
        first = lines.readline()
        try:
            header = _header_decoder.decode(first)
        except msgspec.DecodeError as exc:
            raise invalid(f"{path.name}: line 1 is not an nbstream recording's header "
                          f"({exc})", file=str(path), line=1) from None
        _check_format(path, header)
        frames: list[Frame] = []
        problems: list[str] = []
        for number, line in enumerate(lines, start=2):
            if not line.strip():
                continue
            try:
                frames.append(_frame_of(_line_decoder.decode(line)))
            except (msgspec.DecodeError, binascii.Error, ValueError) as exc:
                ending = "" if line.endswith(b"\n") else " (the file ends inside it: truncated?)"
                problem = f"{path.name}: line {number} is not a frame{ending}: {exc}"
                if strict:
                    raise invalid(problem + f"; Recording.load({path.name!r}, strict=False) "
                                  f"keeps the {len(frames)} frame(s) before it and any after",
                                  file=str(path), line=number) from None
                problems.append(problem)
    return header, frames, problems


def _frame_of(line: Line) -> Frame:
    if line.direction not in (None, "c2s", "s2c"):
        raise ValueError(f"direction {line.direction!r} is not c2s or s2c")
    payload: str | bytes | None = line.text
    if line.base64 is not None:
        payload = base64.b64decode(line.base64, validate=True)
    return Frame(line.at, line.session, line.direction,  # type: ignore[arg-type]
                 line.opcode, line.type, line.size, payload, line.close_code)


def _check_format(path: Path, header: Header) -> None:
    if header.format != FORMAT:
        raise invalid(f"{path.name} is not an nbstream recording (format "
                      f"{header.format!r})", file=str(path))
    if header.version > VERSION:
        raise invalid(f"{path.name} is a version {header.version} recording; this "
                      f"nbstream reads version {VERSION}: upgrade nbstream", file=str(path))


# -- parquet ----------------------------------------------------------------------------------

def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([
        ("at", pa.float64()), ("session", pa.string()), ("direction", pa.string()),
        ("opcode", pa.int16()), ("type", pa.string()), ("size", pa.int64()),
        ("text", pa.string()), ("binary", pa.binary()), ("close_code", pa.int32()),
    ])


def _save_parquet(path: Path, header: Header, frames: list[Frame]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list[Any]] = {
        "at": [f.at for f in frames], "session": [f.session for f in frames],
        "direction": [f.direction for f in frames], "opcode": [f.opcode for f in frames],
        "type": [f.type for f in frames], "size": [f.size for f in frames],
        "text": [f.payload if isinstance(f.payload, str) else None for f in frames],
        "binary": [f.payload if isinstance(f.payload, bytes) else None for f in frames],
        "close_code": [f.close_code for f in frames],
    }
    schema = _schema().with_metadata({_PARQUET_KEY: _encoder.encode(header)})
    pq.write_table(pa.table(columns, schema=schema), path)


def _load_parquet(path: Path) -> Header:
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError... for a damaged file
        raise invalid(f"{path.name} is not a readable parquet file ({exc})",
                      file=str(path)) from None
    if _PARQUET_KEY not in metadata:
        raise invalid(f"{path.name} is a parquet file but not an nbstream recording "
                      "(no recording header in its metadata)", file=str(path))
    try:
        header = _header_decoder.decode(metadata[_PARQUET_KEY])
    except msgspec.DecodeError as exc:
        raise invalid(f"{path.name}: its recording header cannot be read ({exc})",
                      file=str(path)) from None
    _check_format(path, header)
    return header


def _parquet_frames(path: Path) -> list[Frame]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, schema=_schema())
    except Exception as exc:  # a damaged or truncated file
        raise invalid(f"{path.name}: its frames cannot be read ({exc})",
                      file=str(path)) from None
    c = table.to_pydict()
    return [Frame(at, session, direction, opcode, kind, size,
                  text if text is not None else binary, close_code)
            for at, session, direction, opcode, kind, size, text, binary, close_code
            in zip(c["at"], c["session"], c["direction"], c["opcode"], c["type"], c["size"],
                   c["text"], c["binary"], c["close_code"], strict=True)]

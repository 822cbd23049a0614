"""Browser captures: the WebSocket entries of HAR files, read and written.

Chromium's devtools (Chrome, Edge) and Playwright's ``record_har_path`` save each
WebSocket as an entry with ``"_resourceType": "websocket"`` whose
``_webSocketMessages`` hold the frames: ``{"type": "send"|"receive", "time": ...,
"opcode": 1|2, "data": text, or base64 for opcode 2}``. Devtools writes ``time`` in
epoch seconds, Playwright in epoch milliseconds: the unit is told from the entry's
``startedDateTime``. Devtools also writes ``"type": "error"`` entries (the browser's
error text, not a frame): they go to ``problems``. Sessions are named ``ws-1``,
``ws-2``... in the order of their entries, or by the ``_nbstreamSession`` field that
:func:`write` adds; errors name the entry by its index in ``log.entries``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

from nbstream.events import BINARY, CLOSE, PING, PONG, TEXT, Direction
from nbstream.recording.frames import (
    DATA_OPCODES,
    OPCODES,
    Frame,
    SessionInfo,
    TypeNamer,
    invalid,
    redacted,
    redacted_session,
)
from nbstream.redact import redact_text

if TYPE_CHECKING:
    from nbstream.recording.recorder import Recorder

R = TypeVar("R", bound="Recorder")

_DIRECTIONS: dict[str, Direction] = {"send": "c2s", "receive": "s2c"}
_HINT = "; Recording.from_har(..., strict=False) loads the rest and lists what it skipped"


def read(source: str | Path | dict[str, Any], cls: type[R], *, strict: bool) -> R:
    """The WebSocket entries of a HAR file (or of a parsed HAR dict) as ``cls``."""
    name = "the HAR" if isinstance(source, dict) else Path(source).name
    har = source if isinstance(source, dict) else _parse(Path(source))
    log = har.get("log") if isinstance(har, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise invalid(f"{name} is not a HAR file: it has no log.entries list", file=name)
    sockets = [(i, e) for i, e in enumerate(entries) if _is_websocket(e)]
    if not sockets:
        raise invalid(f"{name} has no WebSocket entry among its {len(entries)} entries: "
                      "save the HAR after the page opened its WebSocket (devtools' Network "
                      "panel open first, or Playwright's record_har_path)", file=name)
    frames: list[Frame] = []
    sessions: list[SessionInfo] = []
    problems: list[str] = []
    namer = TypeNamer("json")
    for number, (index, entry) in enumerate(sockets, start=1):
        session = entry.get("_nbstreamSession")
        session = session if isinstance(session, str) and session else f"ws-{number}"
        entry_frames, info = _entry(name, index, entry, session, namer, problems, strict)
        frames.extend(entry_frames)
        sessions.append(info)
    frames.sort(key=lambda f: f.at)
    starts = [s.opened for s in sessions if s.opened is not None] + [f.at for f in frames[:1]]
    recorder = cls(frames, sessions, start=min(starts) if starts else None,
                   protocol="json", source=name)
    recorder.problems.extend(problems)
    return recorder


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise invalid(f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start}): "
                      "a HAR file is JSON", file=str(path)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        truncated = " (the file ends before its JSON does: truncated?)" if _unclosed(text) \
            else ""
        raise invalid(f"{path.name} is not complete JSON: {exc.msg} at line {exc.lineno} "
                      f"column {exc.colno}{truncated}", file=str(path), line=exc.lineno
                      ) from None


def _unclosed(text: str) -> bool:
    """Whether ``text`` ends inside a string or with brackets still open."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
    return in_string or depth > 0


def _is_websocket(entry: Any) -> bool:
    return isinstance(entry, dict) and (entry.get("_resourceType") == "websocket"
                                        or "_webSocketMessages" in entry)


def _entry(name: str, index: int, entry: dict[str, Any], session: str, namer: TypeNamer,
           problems: list[str], strict: bool) -> tuple[list[Frame], SessionInfo]:
    request = entry.get("request")
    url = request.get("url") if isinstance(request, dict) else None
    where = f"{name}: entry {index}" + (f" ({url})" if isinstance(url, str) else "")
    if not isinstance(url, str):
        raise invalid(f"{where} has no request.url", file=name, entry=index)
    opened = _started(entry.get("startedDateTime"))
    messages = entry.get("_webSocketMessages") or []
    if not isinstance(messages, list):
        raise invalid(f"{where}: _webSocketMessages is not a list", file=name, entry=index,
                      url=url)
    scale = _time_scale(messages, opened)
    frames = []
    for number, message in enumerate(messages):
        try:
            frame = _frame(message, session, scale, namer)
        except ValueError as exc:
            problem = f"{where}, message {number}: {exc}"
            if strict:
                raise invalid(problem + _HINT, file=name, entry=index, url=url,
                              message=number) from None
            problems.append(problem)
            continue
        if frame is None:  # the browser's error text
            problems.append(f"{where}, message {number}: the browser reported "
                            f"{message.get('data')!r}")
            continue
        frames.append(frame)
    closes = [f for f in frames if f.opcode == CLOSE]
    info = SessionInfo(session, url=url, subprotocol=_agreed_subprotocol(entry), opened=opened,
                       closed=closes[-1].at if closes else None,
                       close_code=closes[-1].close_code if closes else None)
    return frames, info


def _started(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _time_scale(messages: list[Any], opened: float | None) -> float:
    """1.0 when ``time`` is in seconds (devtools), 0.001 when in ms (Playwright)."""
    first = next((m.get("time") for m in messages if isinstance(m, dict)
                  and _is_number(m.get("time"))), None)
    if first is None:
        return 1.0
    if opened is not None:
        return 1.0 if abs(first - opened) <= abs(first / 1000 - opened) else 0.001
    return 0.001 if first > 1e11 else 1.0  # 1e11 s is the year 5138; 1e11 ms is 1973


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _frame(message: Any, session: str, scale: float, namer: TypeNamer) -> Frame | None:
    """One ``_webSocketMessages`` item as a frame (None for an ``error`` item).

    Raises:
        ValueError: saying what is wrong with it.
    """
    if not isinstance(message, dict):
        raise ValueError(f"is {type(message).__name__}, not an object")
    kind = message.get("type")
    if kind == "error":
        return None
    if kind not in _DIRECTIONS:
        raise ValueError(f"type {kind!r} is neither 'send' nor 'receive'")
    opcode, data, at = message.get("opcode"), message.get("data", ""), message.get("time")
    if opcode not in OPCODES or isinstance(opcode, bool):
        raise ValueError(f"opcode {opcode!r} is not a WebSocket opcode "
                         "(1 text, 2 binary, 8 close, 9 ping, 10 pong)")
    if not _is_number(at):
        raise ValueError(f"time {at!r} is not a number")
    if not isinstance(data, str):
        raise ValueError(f"data is {type(data).__name__}, not a string")
    direction, at = _DIRECTIONS[kind], float(at) * scale
    if opcode == TEXT:
        return Frame(at, session, direction, TEXT, namer.type_of(data), len(data.encode()),
                     data)
    if opcode == CLOSE:
        code = message.get("code")
        return Frame(at, session, direction, CLOSE, payload=data,
                     close_code=int(code) if _is_number(code) else None)
    try:
        payload = base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"data is not valid base64 ({exc}) although opcode {opcode} "
                         "carries bytes") from None
    return Frame(at, session, direction, opcode,
                 namer.type_of(payload) if opcode == BINARY else None, len(payload), payload)


def _agreed_subprotocol(entry: dict[str, Any]) -> str | None:
    response = entry.get("response")
    headers = response.get("headers") if isinstance(response, dict) else None
    for header in headers if isinstance(headers, list) else []:
        if isinstance(header, dict) and str(header.get("name")).lower() == \
                "sec-websocket-protocol" and isinstance(header.get("value"), str):
            return str(header["value"]).strip() or None
    return None


# -- writing ----------------------------------------------------------------------------------

def write(recorder: Recorder, path: Path | None, *, redact: bool) -> dict[str, Any]:
    """``recorder`` as a HAR log dict, also written to ``path`` when given."""
    frames = recorder.frames
    entries = []
    for info in list(recorder.info.values()):
        own = [f for f in frames if f.session == info.session]
        entries.append(_har_entry(redacted_session(info) if redact else info,
                                  [redacted(f) for f in own] if redact else own,
                                  recorder.start))
    try:
        creator_version = version("nbstream")
    except PackageNotFoundError:  # a source tree that was not installed
        creator_version = "0+unknown"
    log = {"log": {"version": "1.2",
                   "creator": {"name": "nbstream", "version": creator_version,
                               "comment": redact_text(recorder.source) if redact
                               else recorder.source},
                   "pages": [], "entries": entries}}
    if path is not None:
        path.write_text(json.dumps(log, indent=2, ensure_ascii=False), encoding="utf-8")
    return log


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _har_entry(info: SessionInfo, frames: list[Frame], start: float) -> dict[str, Any]:
    opened = info.opened if info.opened is not None else (frames[0].at if frames else start)
    last = max([f.at for f in frames] + [info.closed or opened, opened])
    protocol = ([{"name": "Sec-WebSocket-Protocol", "value": info.subprotocol}]
                if info.subprotocol else [])
    messages = [_har_message(f) for f in frames
                if f.direction is not None and (f.opcode in DATA_OPCODES or f.opcode in
                                                (PING, PONG, CLOSE))]
    return {
        "startedDateTime": _iso(opened),
        "time": round((last - opened) * 1000, 3),
        "request": {"method": "GET", "url": info.url or "", "httpVersion": "HTTP/1.1",
                    "headers": [{"name": "Upgrade", "value": "websocket"},
                                {"name": "Connection", "value": "Upgrade"},
                                {"name": "Sec-WebSocket-Version", "value": "13"}, *protocol],
                    "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
        "response": {"status": 101, "statusText": "Switching Protocols",
                     "httpVersion": "HTTP/1.1",
                     "headers": [{"name": "Upgrade", "value": "websocket"},
                                 {"name": "Connection", "value": "Upgrade"}, *protocol],
                     "cookies": [], "content": {"size": 0, "mimeType": "x-unknown"},
                     "redirectURL": "", "headersSize": -1, "bodySize": -1},
        "cache": {},
        "timings": {"blocked": -1, "dns": -1, "ssl": -1, "connect": -1, "send": 0,
                    "wait": 0, "receive": 0},
        "_resourceType": "websocket",
        "_nbstreamSession": info.session,
        "_webSocketMessages": messages,
    }


def _har_message(frame: Frame) -> dict[str, Any]:
    payload = frame.payload
    if isinstance(payload, bytes):
        data = base64.b64encode(payload).decode()
    else:
        data = payload or ""
    message: dict[str, Any] = {"type": "send" if frame.direction == "c2s" else "receive",
                               "time": frame.at, "opcode": frame.opcode, "data": data}
    if frame.close_code is not None:
        message["code"] = frame.close_code
    return message

"""A recording: every frame of some WebSocket sessions, kept, saved, replayed and diffed.

``nbstream.record(source)`` starts one on a server, a client or a fault proxy. The
other modules of this package do the work and :class:`Recording` gathers them:
``recorder`` (filling live), ``files`` (parquet, JSON Lines), ``har`` (browser
captures), ``replayer``, ``compare`` (diffs) and ``scenario`` (load tests).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbstream.client import Client
from nbstream.events import TEXT, EventStream, FlowEvent
from nbstream.recording import compare, files, har, playback, replayer, scenario
from nbstream.recording.frames import COLUMNS, Frame, SessionInfo
from nbstream.recording.recorder import Recorder
from nbstream.recording.replayer import Timing
from nbstream.server import Server
from nbstream.wire import WireProtocol

if TYPE_CHECKING:
    import pandas as pd

    from nbstream.recording.scenario import Scenario


class Recording(Recorder):
    """Frames of one or more WebSocket sessions, with when and where they happened.

    Make one with :func:`nbstream.record` (live), :meth:`load` (a saved file) or
    :meth:`from_har` (a browser capture); look at it with :attr:`frame` and
    :attr:`sessions`; :meth:`save`, :meth:`to_har`, :meth:`replay`, :meth:`diff` and
    :meth:`to_scenario` do the rest.
    """

    _cached: tuple[int, pd.DataFrame] | None = None

    # -- looking at it ------------------------------------------------------------------------

    @property
    def frame(self) -> pd.DataFrame:
        """One row per frame: ``time`` (seconds since :attr:`start`), ``at`` (UTC),
        ``session``, ``direction`` (c2s/s2c), ``opcode`` (1 text, 2 binary, 8 close, 9
        ping, 10 pong), ``type``, ``size`` (bytes), ``payload`` (str for text, bytes
        otherwise, the reason for a close) and ``close_code``."""
        count = len(self._frames)
        if self._cached is not None and self._cached[0] == count:
            return self._cached[1].copy()
        import pandas as pd

        frames = self._frames[:count]
        at = [f.at for f in frames]
        data = pd.DataFrame({
            "time": pd.Series([t - self.start for t in at], dtype="float64"),
            "at": pd.to_datetime(pd.Series(at, dtype="float64"), unit="s", utc=True),
            "session": pd.Series([f.session for f in frames], dtype="object"),
            "direction": pd.Series([f.direction for f in frames], dtype="object"),
            "opcode": pd.Series([f.opcode for f in frames], dtype="int64"),
            "type": pd.Series([f.type for f in frames], dtype="object"),
            "size": pd.Series([f.size for f in frames], dtype="int64"),
            "payload": pd.Series([f.payload for f in frames], dtype="object"),
            "close_code": pd.array([f.close_code for f in frames], dtype="Int64"),
        }, columns=COLUMNS)
        self._cached = (count, data)
        return data.copy()

    @property
    def sessions(self) -> pd.DataFrame:
        """One row per session: ``session``, ``url``, ``subprotocol``, ``user``,
        ``opened``/``closed`` (seconds since :attr:`start`), ``close_code``,
        ``close_reason`` and ``frames`` (how many)."""
        import pandas as pd

        counts: dict[str, int] = {}
        for f in self._frames:
            counts[f.session] = counts.get(f.session, 0) + 1
        rows = [{"session": s.session, "url": s.url, "subprotocol": s.subprotocol,
                 "user": s.user,
                 "opened": None if s.opened is None else s.opened - self.start,
                 "closed": None if s.closed is None else s.closed - self.start,
                 "close_code": s.close_code, "close_reason": s.close_reason,
                 "frames": counts.get(s.session, 0)} for s in list(self.info.values())]
        columns = ["session", "url", "subprotocol", "user", "opened", "closed",
                   "close_code", "close_reason", "frames"]
        frame = pd.DataFrame(rows, columns=columns)
        frame["close_code"] = frame["close_code"].astype("Int64")
        return frame

    @property
    def duration(self) -> float:
        """Seconds from :attr:`start` to the last frame."""
        return max((f.at for f in self._frames), default=self.start) - self.start

    def flow_events(self) -> list[FlowEvent]:
        """The frames as the flow events a server would have published (for views)."""
        return playback.flow_events(self)

    def select(self, sessions: str | Sequence[str] | None) -> Recording:
        """A recording of only ``sessions`` (one name or several; None: all of them).

        Raises:
            KeyError: naming the sessions this recording does not have.
        """
        if sessions is None:
            return self
        wanted = [sessions] if isinstance(sessions, str) else list(sessions)
        missing = [s for s in wanted if s not in self.info]
        if missing:
            raise KeyError(f"no session {', '.join(map(repr, missing))} in this recording; "
                           f"it has {', '.join(map(repr, self.info)) or 'none'}")
        chosen = set(wanted)
        return Recording([f for f in self._frames if f.session in chosen],
                         [self.info[s] for s in wanted], start=self.start,
                         protocol=self.protocol, source=self.source, meta=self.meta)

    def __repr__(self) -> str:
        state = "recording" if self.live else "stopped"
        return (f"<nbstream.Recording {len(self.info)} session(s), {len(self._frames)} "
                f"frame(s), {self.duration:.2f} s, {state}"
                f"{f', from {self.source}' if self.source else ''}>")

    # -- files -------------------------------------------------------------------------------

    def save(self, path: str | Path, *, redact: bool = True) -> Path:
        """Write the recording to ``path``: ``.parquet`` or ``.jsonl`` (by the suffix).

        Both keep everything, binary payloads included; :meth:`load` reads them back.

        Args:
            redact: Replace secrets (``?token=`` in URLs, ``auth`` frames' tokens,
                ``Authorization`` values in text payloads) with ``[redacted]``. Pass
                False only for files that stay private.
        """
        return files.save(self, Path(path), redact=redact)

    @classmethod
    def load(cls, path: str | Path, *, strict: bool = True) -> Recording:
        """Read a recording written by :meth:`save` (``.parquet`` or ``.jsonl``).

        Args:
            strict: With False, a damaged JSON Lines file gives the frames before the
                damage, and :attr:`problems` says what was skipped.

        Raises:
            nbstream.StreamError: INVALID_RECORDING, naming the file and the line.
        """
        return files.load(Path(path), cls, strict=strict)

    @classmethod
    def from_har(cls, source: str | Path | dict[str, Any], *, strict: bool = True
                 ) -> Recording:
        """Every WebSocket entry of a HAR file (Chrome, Edge, Playwright) as a session.

        Sessions are named ``ws-1``, ``ws-2``... in the order of the entries (or as
        they were, for a HAR that :meth:`to_har` wrote).

        Args:
            source: A path, or the HAR already parsed as a dict.
            strict: With False, messages that cannot be read are skipped and listed in
                :attr:`problems` instead of raising.

        Raises:
            nbstream.StreamError: INVALID_RECORDING, naming the entry (and message)
                that cannot be read, or saying the file holds no WebSocket entry.
        """
        return har.read(source, cls, strict=strict)

    def to_har(self, path: str | Path | None = None, *, redact: bool = True
               ) -> dict[str, Any]:
        """The recording as a HAR log in Chromium's shape; written to ``path`` if given.

        Text and binary frames become ``_webSocketMessages`` (control frames have no
        place there). ``redact`` as for :meth:`save`.
        """
        return har.write(self, None if path is None else Path(path), redact=redact)

    # -- replaying ---------------------------------------------------------------------------

    def replay(self, target: str | Server, *, timing: Timing = "original", speed: float = 1.0,
               sessions: str | Sequence[str] | None = None, timeout: float = 10.0,
               **connect: Any) -> Recording:
        """Send the client's frames again to ``target`` and record what happens.

        Args:
            target: A ``ws://`` URL or a :class:`nbstream.Server`.
            timing: ``original`` (the recorded spacing, divided by ``speed``), ``fast``
                (back to back), or ``wait`` (each after the replies that preceded it).
            speed: How much faster than recorded (``timing="original"``).
            sessions: Replay only these sessions (names from :attr:`sessions`).
            timeout: Seconds to wait for the replies a session had, before moving on.
            **connect: Options for :func:`nbstream.connect` (``token``, ``headers``...).

        Returns:
            A new recording with the same session names; compare with :meth:`diff`.
        """
        from nbstream import runtime

        return runtime.run_sync(self.areplay(target, timing=timing, speed=speed,
                                             sessions=sessions, timeout=timeout, **connect),
                                runtime.home_loop())

    async def areplay(self, target: str | Server, *, timing: Timing = "original",
                      speed: float = 1.0, sessions: str | Sequence[str] | None = None,
                      timeout: float = 10.0, **connect: Any) -> Recording:
        """Async twin of :meth:`replay`."""
        return await replayer.replay(self.select(sessions), target, Recording, timing=timing,
                                   speed=speed, timeout=timeout, connect=connect)

    def diff(self, other: Recording, *, tolerance: float = 0.05,
             ignore: Iterable[str] | None = None) -> pd.DataFrame:
        """What ``other`` (a replay, say) did differently, per session and direction.

        One row per difference: ``missing`` (here, not there), ``extra``, ``moved``
        (the same payload at another place), ``changed`` (same place, other payload) or
        ``timing`` (same payload, more than ``tolerance`` seconds off). JSON payloads
        are compared without the keys in ``ignore``, anywhere in them (default: ``id``,
        ``timestamp``, ``session_id``, ``epoch``, ``tool_use_id``, ``reply_to``, which
        change on every run). See docs/recordings.md for how times are compared.
        """
        return compare.diff(self, other, tolerance=tolerance, ignore=ignore)

    def to_scenario(self, *, speed: float = 1.0, think: bool = True) -> Scenario:
        """A load-test scenario: each user plays one recorded session (user ``i`` the
        ``i % n``-th), its sends with their think times, waiting for the replies.

        ``nbstream.load_test(target, scenario=rec.to_scenario(), connections=200)``.

        Args:
            speed: Divide think times by this.
            think: False sends each message as soon as the previous reply is in.
        """
        return scenario.scenario_of(self, speed=speed, think=think)


def record(source: Server | Client | Any) -> Recording:
    """Start recording ``source`` (a Server, a Client or a FaultProxy); returns the
    :class:`Recording`, which fills as frames flow. Call ``recording.stop()`` (or use
    ``with nbstream.record(server) as rec:``) when you have what you need.

    A server publishes its frames only while someone records or watches, so recording
    costs nothing before this call. A client's recording starts with the welcome that
    opened its session (stamped at the recording's start), so that it replays whole;
    its frames from before are in ``client.events.to_frame()`` if it kept them
    (``client.events.keep(n)``).

    Raises:
        TypeError: for a source without an event stream.
    """
    events = getattr(source, "events", None)
    if not isinstance(events, EventStream):
        raise TypeError(f"record() takes a Server, a Client or a FaultProxy, not "
                        f"{type(source).__name__}: each has an .events stream to record")
    protocol = getattr(source, "protocol", None)
    protocol = protocol if isinstance(protocol, WireProtocol) else None
    kind = "server" if isinstance(source, Server) else \
        "client" if isinstance(source, Client) else "proxy"
    url = getattr(source, "url", None)
    recording = Recording(start=time.time(), protocol=protocol.name if protocol else "json",
                          source=f"{kind} {url}" if url else kind)
    if isinstance(source, Client):
        _start_client_session(recording, source, protocol)
    recording.attach(events, url=url, protocol=protocol, default_session="client")
    return recording


def _start_client_session(recording: Recording, client: Client,
                          protocol: WireProtocol | None) -> None:
    """Note the client's session; its welcome (nbstream protocol) becomes the first
    frame, stamped at the recording's start, so that the session replays whole."""
    name = client.session_id or "client"
    recording.info[name] = SessionInfo(name, url=client.url, subprotocol=client.subprotocol)
    welcome = client.welcome
    if welcome is not None and protocol is not None:
        encoded = protocol.encode(welcome)
        recording.add(Frame(recording.start, name, "s2c", TEXT, welcome.type,
                            len(encoded.data), encoded.data.decode(errors="replace")))

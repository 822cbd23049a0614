"""Recordings built by hand for the pure tests: frames at chosen times."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from nbstream import Message, Session
from nbstream.events import TEXT
from nbstream.recording import Frame, Recording, SessionInfo

T0 = 1_800_000_000.0
"""A wall-clock start for hand-made recordings (epoch seconds)."""


def text(at: float, direction: Any, payload: str, session: str = "s1",
         kind: str | None = None) -> Frame:
    """A text frame ``at`` seconds after :data:`T0`."""
    return Frame(T0 + at, session, direction, TEXT, kind, len(payload.encode()), payload)


def recording(*frames: Frame, **meta: Any) -> Recording:
    """A stopped recording of ``frames``, one SessionInfo per session named in them."""
    names = dict.fromkeys(f.session for f in frames)
    return Recording(frames, [SessionInfo(n, url=f"ws://127.0.0.1:1/{n}") for n in names],
                     start=T0, meta=meta)


async def echo_twice(message: Message, session: Session) -> AsyncGenerator[Any, None]:
    """A raw-protocol handler answering every frame with two copies of it."""
    yield message.data
    yield message.data

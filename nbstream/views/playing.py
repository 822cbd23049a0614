"""Drive a recording's :class:`~nbstream.recording.playback.Playback` in real time.

A FlowView on a finished recording has a play button and a time scrubber. Seeking
hands the view every event up to the new position (after it clears what it showed);
playing hands it the events that fall due, every ``TICK`` seconds, at the chosen speed,
on the view's event loop, until the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from nbstream import runtime
from nbstream.events import FlowEvent
from nbstream.recording.playback import Playback

TICK = 0.05
"""Seconds between two steps while playing: smooth enough, cheap enough."""


class PlaybackDriver:
    """Seeks and plays ``playback`` into a view through ``reset`` and ``fold``.

    Args:
        reset: Forget every event shown so far (called before a seek refills the view).
        fold: Show these events, oldest first.
        stopped: Called when playing reaches the end.
    """

    def __init__(self, playback: Playback, loop: asyncio.AbstractEventLoop,
                 reset: Callable[[], None], fold: Callable[[list[FlowEvent]], None],
                 stopped: Callable[[], None], clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.playback = playback
        self._loop, self._clock = loop, clock
        self._reset, self._fold, self._stopped = reset, fold, stopped
        self._handle: asyncio.TimerHandle | None = None
        self._last = 0.0

    @property
    def playing(self) -> bool:
        """True between :meth:`play` and the end (or :meth:`pause`)."""
        return self._handle is not None

    def seek(self, position: float) -> None:
        """Show the recording as it stood ``position`` seconds in (playing goes on)."""
        events = self.playback.seek(position)
        self._reset()
        self._fold(events)

    def play(self) -> None:
        """Play from the position (from the start once at the end); any thread."""
        self._on_loop(self._play)

    def _play(self) -> None:
        if self._handle is not None or self._loop.is_closed():
            return
        if self.playback.finished:
            self.seek(0.0)
        self._last = self._clock()
        self._handle = self._loop.call_later(TICK, self._tick)

    def _tick(self) -> None:
        now = self._clock()
        due = self.playback.advance(now - self._last)
        self._last = now
        if due:
            self._fold(due)
        if self.playback.finished:
            self._handle = None
            self._stopped()
        else:
            self._handle = self._loop.call_later(TICK, self._tick)

    def pause(self) -> None:
        """Stop where it is; safe when not playing, from any thread."""
        self._on_loop(self._pause)

    def _pause(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()

    close = pause

    def _on_loop(self, callback: Callable[[], None]) -> None:
        if runtime.running_loop() is self._loop or not self._loop.is_running():
            callback()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback)

"""The events of one scripted response, built ahead of time, and synthetic speech audio.

:func:`spoken_reply` turns a sentence into a :class:`Reply`: the events that open the
response, one *beat* of events per word (a transcript delta, a text delta and a chunk
of PCM audio, as the model's modalities say), and the events that close it. The model
waits its pace between beats and, when the user barges in, emits
:meth:`Reply.interrupted` instead of the remaining beats. Pure: no clock, no I/O.
"""

from __future__ import annotations

import base64
import math
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from strands.bidi.types.events import (
    BidiAudioDeltaEvent,
    BidiAudioStartEvent,
    BidiAudioStopEvent,
    BidiBargeInEvent,
    BidiOutputEvent,
    BidiResponseStartEvent,
    BidiResponseStopEvent,
    BidiTextDeltaEvent,
    BidiTextStartEvent,
    BidiTextStopEvent,
    BidiToolUseBlocksEvent,
    BidiTranscriptDeltaEvent,
    BidiTranscriptStartEvent,
    BidiTranscriptStopEvent,
    BidiUsageEvent,
)
from strands.types.tools import ToolUse

Modality = Literal["audio", "text"]
"""``audio``: speech (audio chunks with the assistant transcript, as speech models send);
``text``: text deltas."""
BYTES_PER_SAMPLE = 2
"""Synthetic audio is 16-bit little-endian signed PCM, mono."""


@lru_cache(maxsize=64)
def tone(frequency: int, milliseconds: int, sample_rate: int) -> bytes:
    """A quiet sine tone as 16-bit mono PCM; cached, since words reuse a few pitches."""
    count = sample_rate * milliseconds // 1000
    step = 2 * math.pi * frequency / sample_rate
    samples = array("h", (int(6000 * math.sin(step * n)) for n in range(count)))
    if sys.byteorder == "big":  # array("h") is native-endian; PCM on the wire is little
        samples.byteswap()
    return samples.tobytes()


def pcm_seconds(size: int, sample_rate: int, channels: int = 1) -> float:
    """How long ``size`` bytes of 16-bit PCM last."""
    return size / (sample_rate * channels * BYTES_PER_SAMPLE)


def word_pitch(word: str) -> int:
    """A deterministic pitch per word, so that speech sounds like more than one beep."""
    return 180 + 20 * (sum(map(ord, word)) % 12)


@dataclass(frozen=True)
class Voice:
    """How the scripted model speaks.

    Attributes:
        modalities: ``audio`` (audio chunks and the assistant transcript), ``text``, or both.
        sample_rate: Output audio sample rate in Hz.
        chunk_ms: Milliseconds of audio per spoken word.
    """

    modalities: frozenset[Modality] = frozenset({"audio", "text"})
    sample_rate: int = 16_000
    chunk_ms: int = 40


@dataclass
class Reply:
    """One response: ``opening`` events, then one beat per word, then ``closing``."""

    response_id: str
    opening: list[BidiOutputEvent]
    beats: list[list[BidiOutputEvent]]
    stream_stops: list[BidiOutputEvent] = field(default_factory=list)
    """The stops of the streams this response opened (audio, transcript, text)."""
    usage: BidiUsageEvent | None = None

    @property
    def closing(self) -> list[BidiOutputEvent]:
        """What ends a response that ran to its end: stops, usage, response stop."""
        tail: list[BidiOutputEvent] = [*self.stream_stops]
        if self.usage is not None:
            tail.append(self.usage)
        tail.append(BidiResponseStopEvent(self.response_id))
        return tail

    def interrupted(self) -> list[BidiOutputEvent]:
        """What ends a response the user barged into: barge-in, stops, response stop.

        strands-agents 1.62's ``bidi_response_stop`` carries no reason: an interrupted
        response is one whose stop follows a ``bidi_barge_in``.
        """
        return [BidiBargeInEvent(), *self.stream_stops,
                BidiResponseStopEvent(self.response_id)]


def spoken_reply(response_id: str, sentence: str, voice: Voice,
                 input_tokens: int = 0) -> Reply:
    """The events of a response that speaks ``sentence`` word by word."""
    words = sentence.split()
    spoken = [word if index == 0 else f" {word}" for index, word in enumerate(words)]
    opening: list[BidiOutputEvent] = [BidiResponseStartEvent(response_id)]
    stops: list[BidiOutputEvent] = []
    audio_id, transcript_id, text_id = (f"{response_id}:{kind}"
                                        for kind in ("audio", "transcript", "text"))
    speaks = "audio" in voice.modalities and bool(words)
    writes = "text" in voice.modalities and bool(words)
    if speaks:
        opening += [BidiAudioStartEvent(audio_id),
                    BidiTranscriptStartEvent("assistant", transcript_id)]
        stops += [BidiTranscriptStopEvent("assistant", transcript_id),
                  BidiAudioStopEvent(audio_id)]
    if writes:
        opening.append(BidiTextStartEvent(text_id))
        stops.append(BidiTextStopEvent(text_id))
    beats = []
    for word, piece in zip(words, spoken, strict=True):
        beat: list[BidiOutputEvent] = []
        if speaks:
            pcm = tone(word_pitch(word), voice.chunk_ms, voice.sample_rate)
            beat += [BidiTranscriptDeltaEvent(piece, "assistant", transcript_id),
                     BidiAudioDeltaEvent(base64.b64encode(pcm).decode("ascii"), "pcm",
                                         voice.sample_rate, 1, audio_id)]
        if writes:
            beat.append(BidiTextDeltaEvent(piece, text_id))
        beats.append(beat)
    usage = BidiUsageEvent(input_tokens, len(words), input_tokens + len(words))
    return Reply(response_id, opening, beats, stops, usage)


def tool_reply(response_id: str, tool_uses: Iterable[ToolUse]) -> Reply:
    """A response that only asks for tools (its answer comes in a later response)."""
    return Reply(response_id,
                 [BidiResponseStartEvent(response_id), BidiToolUseBlocksEvent(list(tool_uses))],
                 [])


def user_transcript(content_id: str, words: str) -> list[BidiOutputEvent]:
    """How a speech model reports what it heard: a user transcript start, delta, stop."""
    return [BidiTranscriptStartEvent("user", content_id),
            BidiTranscriptDeltaEvent(words, "user", content_id),
            BidiTranscriptStopEvent("user", content_id)]

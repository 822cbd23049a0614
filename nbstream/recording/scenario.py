"""A recording as a load-test scenario: every virtual user plays one recorded session.

User ``i`` plays session ``i % n``: it waits each send's think time, sends it, and
when the session had replies to it, waits for them as a timed request (named after
the message's type), so ``load_test(target, scenario=rec.to_scenario(), ...)`` reports
per-type latencies; the whole session is step ``session`` (``session NAME`` when the
recording has several). With the nbstream protocol the client speaks envelopes itself:
recorded envelopes are sent again without their ``id`` and ``timestamp``, a ``chat``
waits for its ``end``, and heartbeat and ``auth`` frames are left to the client
(``token=``). Other protocols send the recorded frames as they are.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from nbstream.protocol import Message, MessageType
from nbstream.recording.script import Send, SessionScript, scripts

if TYPE_CHECKING:
    from nbstream.recording.recorder import Recorder

Scenario = Callable[[Any], Awaitable[None]]
"""``async def user_flow(user) -> None``, as ``load_test(scenario=...)`` takes it."""

LEFT_TO_THE_CLIENT = frozenset({MessageType.PING, MessageType.PONG, MessageType.AUTH})
"""nbstream message types a client sends by itself, never replayed by a scenario."""


def scenario_of(recorder: Recorder, *, speed: float, think: bool) -> Scenario:
    """The scenario that plays ``recorder``'s sessions (see the module docstring).

    Raises:
        ValueError: when the recording has no session with frames sent by the client,
            or ``speed`` is not positive.
    """
    if not speed > 0:
        raise ValueError(f"speed={speed!r} must be a positive number")
    plan = [s for s in scripts(recorder.frames, list(recorder.info.values()), recorder.protocol)
            if s.sends]
    if not plan:
        raise ValueError("this recording has no frames sent by a client to play: record "
                         "a session in which the client sends something")

    async def play_recording(user: Any) -> None:
        """Play recorded session ``user.index % n`` (n: the recording's sessions)."""
        script = plan[user.index % len(plan)]
        envelope = getattr(user.client.protocol, "name", None) == "nbstream"
        async with user.step("session" if len(plan) == 1 else f"session {script.session}"):
            await _play(user, script, envelope, speed if think else None)

    play_recording.__qualname__ = play_recording.__name__ = "play_recording"
    return play_recording


async def _play(user: Any, script: SessionScript, envelope: bool, speed: float | None
                ) -> None:
    for send in script.sends:
        value = _value(send, envelope)
        if value is None:
            continue
        if speed is not None and send.think > 0:
            await user.sleep(send.think / speed)
        name = send.type or "message"
        if envelope and send.type == MessageType.CHAT:
            await user.request(value, name=name)  # the reply ends at its ``end``
        elif send.replies_after:
            await user.request(value, until=_counter(send.replies_after), name=name)
        else:
            await user.client.asend(value)


def _value(send: Send, envelope: bool) -> Any:
    """What to hand the client for ``send``; None for frames the client sends itself."""
    payload = send.payload
    if isinstance(payload, bytes):
        return Message("binary", payload) if envelope else payload
    if not envelope:
        return payload
    try:
        decoded = json.loads(payload)
    except ValueError:
        return payload
    if not isinstance(decoded, dict) or not isinstance(decoded.get("type"), str):
        return payload
    if decoded["type"] in LEFT_TO_THE_CLIENT:
        return None
    return {"type": decoded["type"], "data": decoded.get("data")}


def _counter(count: int) -> Callable[[Any], bool]:
    """An ``until`` that is true at the ``count``-th reply."""
    seen = 0

    def until(_message: Any) -> bool:
        nonlocal seen
        seen += 1
        return seen >= count

    return until

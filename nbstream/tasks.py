"""Starting a reply as a task that runs at once, with public asyncio API only.

Each reply runs in a task of its own (its own context variables, its own
cancellation, its own ``asyncio.timeout``), so the connection's receive loop stays
free for pings, pongs and the next request. On Python 3.12 and later the task starts
*eagerly* (``asyncio.create_eager_task_factory``): it runs until it first waits,
inside the call that creates it, so a reply that never waits (the echo handler, a
socket that takes every frame) finishes without an event-loop iteration of its own.
On 3.11 the task starts on the next iteration, as every task does there.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

EAGER = sys.version_info >= (3, 12)
"""Whether :func:`start` runs a task's first step at once (Python 3.12+)."""

_Factory = Callable[..., "asyncio.Task[Any]"]
_eager: _Factory | None = (asyncio.create_eager_task_factory(asyncio.Task)  # type: ignore[attr-defined,unused-ignore]
                           if EAGER else None)


def start(coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
    """Run ``coro`` in a new task on the running loop, eagerly where Python allows.

    The task may already be done when this returns (it never waited).
    """
    loop = asyncio.get_running_loop()
    if _eager is None:
        return loop.create_task(coro, name=name)
    task: asyncio.Task[T] = _eager(loop, coro, name=name)
    return task

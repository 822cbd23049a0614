"""Start a coroutine on behalf of a waiting task, without an event-loop round trip.

A session's replies are streamed by its worker task, so that the connection's
receive loop stays free for pings, pongs and errors. Handing each chat to the
worker through a queue costs one event-loop iteration per chat: 6% of a
request/response round trip at one connection here. Most replies, though, never
wait (the echo handler; every frame taken by the socket at once), so the reader runs
the reply itself *as the worker* (``asyncio.current_task()`` is the worker, so an
``asyncio.timeout`` entered by a handler belongs to the right task) until it first
has to wait, and only then hands it over: :func:`resume` drives it on from there in
the worker. This is what Python 3.12's eager tasks do for new tasks; here the task
already exists and sits idle.

Where asyncio's task bookkeeping hooks are missing, :data:`AVAILABLE` is False and
callers queue work for the task as usual.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any

AVAILABLE = hasattr(asyncio.tasks, "_enter_task") and hasattr(asyncio.tasks, "_leave_task")
"""Whether :func:`start_as` can be used on this Python."""


def start_as(task: asyncio.Task[Any], coro: Coroutine[Any, Any, None]) -> Any | None:
    """Run ``coro`` as ``task`` (which must be suspended) until it first waits.

    Returns None if ``coro`` finished, else what it waits on: pass both to
    :func:`resume` from inside ``task``. Call only from a running task on the same loop.
    """
    loop = task.get_loop()
    caller = asyncio.current_task(loop)
    assert caller is not None and caller is not task
    # Looked up at call time: nest_asyncio replaces these in a notebook kernel.
    enter, leave = asyncio.tasks._enter_task, asyncio.tasks._leave_task
    leave(loop, caller)
    enter(loop, task)
    try:
        return coro.send(None)
    except StopIteration:
        return None
    finally:
        leave(loop, task)
        enter(loop, caller)


@types.coroutine
def resume(coro: Coroutine[Any, Any, None], waiting_on: Any) -> Generator[Any, None, None]:
    """``await resume(coro, waiting_on)``: finish a coroutine :func:`start_as` began.

    The awaiting task passes on what ``coro`` waits on and everything the loop sends
    or throws back (cancellation included), exactly as if it had awaited ``coro``.
    """
    yielded = waiting_on
    while True:
        try:
            yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # delivered to coro, which decides what propagates
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                yielded = coro.send(None)
            except StopIteration:
                return

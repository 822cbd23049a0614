"""Where nbstream's coroutines run, and how a plain (sync) call waits for them.

* In a Jupyter cell the kernel's asyncio loop is already running in this thread.
  Servers and clients live on it (fastest: no thread hop per message), and a sync
  call such as ``client.chat("hi")`` runs the loop re-entrantly with nest-asyncio,
  applied to that loop on first use.
* In a script there is no running loop, so nbstream starts one daemon thread with
  its own loop, shared by every server and client created there, and a sync call
  waits on it with ``run_coroutine_threadsafe``.
* A loop nbstream owns (that thread's, a load-test worker process's, ``nbstream
  serve``'s) is uvloop's when uvloop is installed (:func:`new_loop`).

``serve(thread=True)`` puts a server on that thread even in a kernel, so that it
keeps serving while a cell blocks (at the cost of a thread hop per message).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_background: asyncio.AbstractEventLoop | None = None


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread (a kernel's), or None in a plain script."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def new_loop() -> asyncio.AbstractEventLoop:
    """A new event loop for a thread or process nbstream owns: uvloop's when it is
    installed (``pip install 'nbstream[server]'``), else asyncio's.

    uvloop schedules callbacks and reads sockets in C (what that is worth for a load
    test: docs/loadtest.md, "How fast is it"). A kernel's own loop is never replaced.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_owned(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` on a loop of :func:`new_loop` (a process's main job)."""
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(coro)


def background_loop() -> asyncio.AbstractEventLoop:
    """nbstream's shared loop on a daemon thread, started on first use."""
    global _background
    with _lock:
        if _background is None or _background.is_closed():
            loop = new_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=run, name="nbstream-loop", daemon=True).start()
            ready.wait()
            _background = loop
        return _background


def home_loop(thread: bool = False) -> asyncio.AbstractEventLoop:
    """The loop a new server or client should live on (see the module docstring)."""
    if not thread:
        loop = running_loop()
        if loop is not None:
            return loop
    return background_loop()


async def run_on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` on ``loop`` from async code running on any loop (or the same one)."""
    if running_loop() is loop:
        return await coro
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


def run_sync(coro: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop) -> T:
    """Run ``coro`` on ``loop`` and wait for its result from synchronous code.

    Put the timeout inside ``coro``: this function itself waits as long as it takes.
    """
    if loop.is_closed():
        coro.close()
        raise RuntimeError("the event loop this object lived on is closed")
    if running_loop() is loop:
        import nest_asyncio

        if not isinstance(loop, asyncio.BaseEventLoop):  # uvloop's: it cannot re-enter
            coro.close()
            raise RuntimeError("a blocking nbstream call from a coroutine on the loop it "
                               "needs would wait forever: await its async twin instead")
        if not getattr(loop, "_nest_patched", False):
            nest_asyncio.apply(loop)
        return loop.run_until_complete(coro)
    if loop.is_running():
        return asyncio.run_coroutine_threadsafe(coro, loop).result()
    return loop.run_until_complete(coro)

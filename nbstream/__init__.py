"""nbstream: see, poke and measure WebSocket bidirectional streaming in a notebook.

Start a server in a cell, connect a client, chat with the scripted agent::

    import nbstream
    server = nbstream.serve()              # returns at once, keeps serving
    client = nbstream.connect(server.url)
    client.chat("what is 6*7?")            # or: await client.achat(...)
    server.stop()

Every name below is imported on first use, so ``import nbstream`` stays fast and a
server never loads pandas or the widgets it does not use.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from nbstream import lazy
from nbstream.protocol import envelope as _envelope

_envelope.use_clock(time.time_ns)  # the wall clock of new messages' timestamps

if TYPE_CHECKING:
    from nbstream.client import Client, StreamClosed, aconnect, connect
    from nbstream.events import EventStream, FlowEvent
    from nbstream.faults import FaultProxy, aproxy, proxy
    from nbstream.handlers import Agent, run_in_thread
    from nbstream.loadtest import (
        LoadProgress,
        LoadResult,
        LoadTest,
        aload_test,
        load_test,
        start_load_test,
    )
    from nbstream.protocol import ErrorCode, Message, MessageType, Session, Severity, StreamError
    from nbstream.recording import Recording, record
    from nbstream.running import stop_all
    from nbstream.server import ConnectionInfo, Server, ServerOptions, ShutdownReport, aserve, serve
    from nbstream.views import FlowView, LoadTestView, ProxyView, ServerView

_EXPORTS = {
    "aconnect": "nbstream.client",
    "Agent": "nbstream.handlers",
    "aload_test": "nbstream.loadtest",
    "aproxy": "nbstream.faults",
    "aserve": "nbstream.server",
    "Client": "nbstream.client",
    "connect": "nbstream.client",
    "ConnectionInfo": "nbstream.server",
    "ErrorCode": "nbstream.protocol",
    "EventStream": "nbstream.events",
    "FaultProxy": "nbstream.faults",
    "FlowEvent": "nbstream.events",
    "FlowView": "nbstream.views",
    "load_test": "nbstream.loadtest",
    "LoadProgress": "nbstream.loadtest",
    "LoadResult": "nbstream.loadtest",
    "LoadTest": "nbstream.loadtest",
    "LoadTestView": "nbstream.views",
    "Message": "nbstream.protocol",
    "MessageType": "nbstream.protocol",
    "proxy": "nbstream.faults",
    "ProxyView": "nbstream.views",
    "record": "nbstream.recording",
    "Recording": "nbstream.recording",
    "run_in_thread": "nbstream.handlers",
    "serve": "nbstream.server",
    "Server": "nbstream.server",
    "ServerOptions": "nbstream.server",
    "ServerView": "nbstream.views",
    "Session": "nbstream.protocol",
    "Severity": "nbstream.protocol",
    "ShutdownReport": "nbstream.server",
    "start_load_test": "nbstream.loadtest",
    "stop_all": "nbstream.running",
    "StreamClosed": "nbstream.client",
    "StreamError": "nbstream.protocol",
}
"""Where each public name lives."""

__all__ = [
    "Agent",
    "Client",
    "ConnectionInfo",
    "ErrorCode",
    "EventStream",
    "FaultProxy",
    "FlowEvent",
    "FlowView",
    "LoadProgress",
    "LoadResult",
    "LoadTest",
    "LoadTestView",
    "Message",
    "MessageType",
    "ProxyView",
    "Recording",
    "Server",
    "ServerOptions",
    "ServerView",
    "Session",
    "Severity",
    "ShutdownReport",
    "StreamClosed",
    "StreamError",
    "aconnect",
    "aload_test",
    "aproxy",
    "aserve",
    "connect",
    "load_test",
    "proxy",
    "record",
    "run_in_thread",
    "serve",
    "start_load_test",
    "stop_all",
]


_load = lazy.loader(__name__, _EXPORTS)


def __getattr__(name: str) -> object:
    """Import a public name's module on first use (PEP 562)."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("nbstream")
        except PackageNotFoundError:  # a source tree that was not installed
            return "0+unknown"
    return _load(name)


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])

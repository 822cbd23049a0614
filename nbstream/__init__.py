"""nbstream: see, poke and measure WebSocket bidirectional streaming in a notebook.

Start a server in a cell, connect a client, chat with the scripted agent::

    import nbstream
    server = nbstream.serve()              # returns at once, keeps serving
    client = nbstream.connect(server.url)
    client.chat("what is 6*7?")            # or: await client.achat(...)
    server.stop()
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

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
from nbstream.running import stop_all
from nbstream.server import (
    ConnectionInfo,
    Server,
    ServerOptions,
    ShutdownReport,
    aserve,
    serve,
)

if TYPE_CHECKING:
    from nbstream.views import FlowView, LoadTestView, ProxyView, ServerView

try:
    __version__ = version("nbstream")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

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
    "run_in_thread",
    "serve",
    "start_load_test",
    "stop_all",
]


def __getattr__(name: str) -> object:
    """Load the views (ipywidgets, about 0.6 s to import) on first use only."""
    if name in ("FlowView", "LoadTestView", "ProxyView", "ServerView"):
        from nbstream import views

        return getattr(views, name)
    raise AttributeError(f"module 'nbstream' has no attribute {name!r}")

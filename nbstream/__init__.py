"""nbstream: see, poke and measure WebSocket bidirectional streaming in a notebook.

Start a server in a cell, connect a client, chat with the scripted agent::

    import nbstream
    server = nbstream.serve()              # returns at once, keeps serving
    client = nbstream.connect(server.url)
    client.chat("what is 6*7?")            # or: await client.achat(...)
    server.stop()
"""

from importlib.metadata import PackageNotFoundError, version

from nbstream.client import Client, StreamClosed, aconnect, connect
from nbstream.events import EventStream, FlowEvent
from nbstream.handlers import Agent, run_in_thread
from nbstream.protocol import ErrorCode, Message, MessageType, Session, Severity, StreamError
from nbstream.server import (
    ConnectionInfo,
    Server,
    ServerOptions,
    ShutdownReport,
    aserve,
    serve,
)

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
    "FlowEvent",
    "Message",
    "MessageType",
    "Server",
    "ServerOptions",
    "Session",
    "Severity",
    "ShutdownReport",
    "StreamClosed",
    "StreamError",
    "aconnect",
    "aserve",
    "connect",
    "run_in_thread",
    "serve",
]

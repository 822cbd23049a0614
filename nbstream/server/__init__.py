"""The asyncio server shell around :mod:`nbstream.protocol`."""

from nbstream.server.connections import ConnectionInfo, Connections
from nbstream.server.conversation import Conversation
from nbstream.server.options import ServerOptions
from nbstream.server.server import Server, aserve, serve
from nbstream.server.shutdown import ShutdownReport

__all__ = [
    "ConnectionInfo",
    "Connections",
    "Conversation",
    "Server",
    "ServerOptions",
    "ShutdownReport",
    "aserve",
    "serve",
]

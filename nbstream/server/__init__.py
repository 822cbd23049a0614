"""The asyncio server shell around :mod:`nbstream.protocol`."""

from nbstream.server.options import ServerOptions
from nbstream.server.server import (
    ConnectionInfo,
    Connections,
    Server,
    ShutdownReport,
    aserve,
    serve,
)

__all__ = [
    "ConnectionInfo",
    "Connections",
    "Server",
    "ServerOptions",
    "ShutdownReport",
    "aserve",
    "serve",
]

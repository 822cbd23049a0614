"""The asyncio server shell around :mod:`nbstream.protocol` (docs/architecture.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbstream import lazy

if TYPE_CHECKING:
    from nbstream.server.connections import ConnectionInfo, Connections
    from nbstream.server.conversation import Conversation
    from nbstream.server.options import ServerOptions
    from nbstream.server.server import Server, aserve, serve
    from nbstream.server.shutdown import ShutdownReport

_EXPORTS = {
    "ConnectionInfo": "nbstream.server.connections",
    "Connections": "nbstream.server.connections",
    "Conversation": "nbstream.server.conversation",
    "Server": "nbstream.server.server",
    "ServerOptions": "nbstream.server.options",
    "ShutdownReport": "nbstream.server.shutdown",
    "aserve": "nbstream.server.server",
    "serve": "nbstream.server.server",
}

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


__getattr__ = lazy.loader(__name__, _EXPORTS)

"""The asyncio server shell around :mod:`nbstream.protocol` (docs/architecture.md)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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


def __getattr__(name: str) -> object:
    """Import a public name's module on first use, so that the command-line tools and
    ``import nbstream`` stay fast (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

"""The nbstream client: ``nbstream.connect(url)`` / ``await nbstream.aconnect(url)``.

Modules, one job each: ``options`` (every keyword, defined once), ``opening`` (the
handshake and welcome), ``watchdog`` (receive deadlines and idle checks), ``turns``
(who reads the socket), ``reconnect`` (reconnect, resume, heartbeat), ``sync`` (the
plain twins), ``client`` (reading, writing, chat, request) and ``connecting``. The session
bookkeeping itself is sans-I/O: :mod:`nbstream.protocol.client_session`.
"""

from nbstream.client.client import Client
from nbstream.client.connecting import aconnect, connect
from nbstream.client.options import DEFAULT_TIMEOUT, ConnectKwargs, ConnectOptions
from nbstream.client.turns import IDLE_CHECK, MAX_PENDING
from nbstream.protocol import StreamClosed

__all__ = [
    "DEFAULT_TIMEOUT",
    "IDLE_CHECK",
    "MAX_PENDING",
    "Client",
    "ConnectKwargs",
    "ConnectOptions",
    "StreamClosed",
    "aconnect",
    "connect",
]

"""The load generator's connections, whichever library drives them.

A :class:`Transport` is one open WebSocket reduced to what a load test needs:
receive a message, send one without waiting, abort, close. Everything that frames
content as messages is the protocol seam's job (:mod:`nbstream.wire`); everything
that measures is the recorder's. This module holds the interface and the
websockets implementation (:func:`open_websockets`); picows' is in
:mod:`nbstream.loadtest.picows_transport`, and :mod:`nbstream.loadtest.transports`
chooses between them. Both say why a handshake failed with the load tester's error
codes (:class:`ConnectFailed`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from nbstream import wsinternals
from nbstream.loadtest.errors import LocalError, http_error
from nbstream.redact import redact_text
from nbstream.wire import Encoded

CONNECT_DEFAULTS: dict[str, Any] = {
    "compression": None,
    "ping_interval": None,
    "close_timeout": 2.0,
    "user_agent_header": "nbstream-loadtest",
}
"""websockets ``connect`` options the load tester changes; ``connect_options`` win.

No compression and no keepalive pings of our own keep the generator's cost per
message minimal; the server's pings are still answered by websockets.
"""


class TransportClosed(Exception):
    """The connection ended: the close code the peer sent (None: none) and its reason."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"connection closed ({1006 if code is None else code}) {reason}")
        self.code = code
        self.reason = reason


class ConnectFailed(Exception):
    """The opening handshake failed: ``error`` is the row's code, ``reason`` says why."""

    def __init__(self, error: str, reason: str) -> None:
        super().__init__(f"{error}: {reason}")
        self.error = error
        self.reason = redact_text(reason)[:200]


class Transport(ABC):
    """One open WebSocket of a load test. Messages are whole (fragments assembled)."""

    name: ClassVar[str]
    """What ``transport=`` calls the library driving it."""

    recv: Callable[[], Awaitable[str | bytes]]
    """The next message: a text message as str, a binary one as bytes. Cancelling the
    wait loses nothing. Once the connection is closed and every message was read, it
    raises :attr:`closed_error`; :meth:`closed` says why. (The library's own receive
    where it has one, so that a receive costs no extra coroutine.)"""

    closed_error: type[BaseException] = TransportClosed

    def __init__(self) -> None:
        self.subprotocol: str | None = None
        """The subprotocol the server agreed to, if any."""
        self.close_code: int | None = None
        """After :meth:`close`: the code the peer sent (1006 when it sent none)."""
        self.close_reason = ""

    def closed(self, error: BaseException) -> TransportClosed:
        """What a :attr:`closed_error` raised by :attr:`recv` means."""
        assert isinstance(error, TransportClosed)
        return error

    @abstractmethod
    def send(self, data: bytes, text: bool) -> None:
        """Write one message now (a text frame of UTF-8 ``data`` or a binary frame).

        A closed connection writes nothing; the next :meth:`recv` raises.
        """

    @abstractmethod
    def abort(self) -> None:
        """Drop the TCP connection at once (no closing handshake)."""

    @abstractmethod
    async def close(self) -> None:
        """Close with code 1000 and wait for the peer (bounded); sets ``close_code``."""


class WebsocketsTransport(Transport):
    """A connection of the websockets library (``transport="websockets"``)."""

    name = "websockets"
    closed_error = ConnectionClosed

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__()
        self.ws = ws
        self.subprotocol = ws.subprotocol
        self.recv = ws.recv

    def closed(self, error: BaseException) -> TransportClosed:
        assert isinstance(error, ConnectionClosed)
        received = error.rcvd
        return TransportClosed(received.code if received is not None else None,
                               received.reason if received is not None else "")

    def send(self, data: bytes, text: bool) -> None:
        # One request in flight per connection: no backpressure to wait for, so the
        # frame is written without websockets' send coroutine and its locking.
        wsinternals.write_now(self.ws, (Encoded(data, text),))

    def abort(self) -> None:
        wsinternals.abort(self.ws)

    async def close(self) -> None:
        await self.ws.close()
        self.close_code, self.close_reason = self.ws.close_code, self.ws.close_reason or ""


async def open_websockets(url: str, timeout: float, options: Mapping[str, Any]
                          ) -> WebsocketsTransport:
    """Open a connection to ``url`` within ``timeout`` seconds.

    Args:
        options: websockets ``connect`` keywords (they win over CONNECT_DEFAULTS).

    Raises:
        ConnectFailed: naming the load tester's code (HTTP_<status>,
            CONNECTION_REFUSED, CONNECT_TIMEOUT, HANDSHAKE_FAILED, CONNECT_FAILED).
    """
    try:
        ws = await connect(url, **{**CONNECT_DEFAULTS, "open_timeout": timeout, **options})
    except InvalidStatus as exc:
        raise ConnectFailed(http_error(exc.response.status_code), str(exc)) from None
    except TimeoutError:
        raise ConnectFailed(LocalError.CONNECT_TIMEOUT, "opening handshake timed out") from None
    except ConnectionRefusedError as exc:
        raise ConnectFailed(LocalError.CONNECTION_REFUSED, str(exc)) from None
    except (InvalidHandshake, ConnectionClosed) as exc:
        raise ConnectFailed(LocalError.HANDSHAKE_FAILED, str(exc)) from None
    except OSError as exc:
        raise ConnectFailed(LocalError.CONNECT_FAILED, str(exc)) from None
    return WebsocketsTransport(ws)

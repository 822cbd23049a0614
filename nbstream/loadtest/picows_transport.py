"""The load generator's connections on picows (``transport="picows"``, ``nbstream[fast]``).

picows parses and frames WebSocket frames in Cython and hands each frame to a
callback: no task, no future and no buffer copy per frame on its side. This module
turns that callback into the :class:`~nbstream.loadtest.transport.Transport` the
load client reads: whole messages (fragments assembled), text as str, binary as
bytes, each delivered straight to the waiting receive. Only picows' documented API
is used; the supported major versions are checked at import, like websockets' in
:mod:`nbstream.wsinternals`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from importlib.metadata import version
from typing import Any

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from nbstream.loadtest.errors import LocalError, http_error
from nbstream.loadtest.transport import ConnectFailed, Transport, TransportClosed

SUPPORTED_MAJOR = range(2, 3)
"""picows major versions this module was checked against."""

OPTIONS = frozenset({"additional_headers", "ssl", "max_size", "open_timeout", "compression",
                     "ping_interval", "close_timeout", "user_agent_header", "subprotocols",
                     "origin"})
"""websockets ``connect`` keywords a picows connection honours (compression only off)."""


def check_version(found: str) -> None:
    """Raise ImportError unless picows ``found`` is a release known to work."""
    try:
        major = int(found.split(".", 1)[0])
    except ValueError:
        raise ImportError(f"cannot read the picows version {found!r}") from None
    if major not in SUPPORTED_MAJOR:
        raise ImportError(f"nbstream supports picows {SUPPORTED_MAJOR.start} to "
                          f"{SUPPORTED_MAJOR.stop - 1}.x, not {found}: check "
                          "nbstream/loadtest/picows_transport.py against it")


check_version(version("picows"))

# Enum members read once: each read through the class costs 70 ns, twice a round trip.
_TEXT, _BINARY = WSMsgType.TEXT, WSMsgType.BINARY
_CONTINUATION, _CLOSE = WSMsgType.CONTINUATION, WSMsgType.CLOSE


def unsupported(options: Mapping[str, Any]) -> list[str]:
    """The options (websockets ``connect`` keywords) a picows connection cannot honour."""
    refused = sorted(set(options) - OPTIONS)
    if options.get("compression") is not None:
        refused.append("compression")
    if options.get("ping_interval") is not None:
        refused.append("ping_interval")
    return refused


class _Receiver(WSListener):
    """picows' callbacks for one connection: whole messages, delivered straight to the
    waiting receive or queued. Created by picows before the handshake completes, so
    that frames arriving with the handshake's response are kept too."""

    def __init__(self) -> None:
        super().__init__()
        self._loop = asyncio.get_running_loop()
        self._messages: deque[str | bytes] = deque()
        self._waiter: asyncio.Future[str | bytes] | None = None
        self._fragments: list[bytes] | None = None
        self._fragments_text = False
        self.closed: TransportClosed | None = None
        self.close_code: int | None = None
        self.close_reason = ""

    def recv(self) -> asyncio.Future[str | bytes]:
        """A future of the next message (done already if one is waiting)."""
        future: asyncio.Future[str | bytes] = self._loop.create_future()
        if self._messages:
            future.set_result(self._messages.popleft())
        elif self.closed is not None:
            future.set_exception(self.closed)
        else:
            self._waiter = future
        return future

    def _deliver(self, message: str | bytes) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # else the receive was cancelled: keep the message
                waiter.set_result(message)
                return
        self._messages.append(message)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """A frame arrived: deliver whole messages, answer a close."""
        kind = frame.msg_type
        if kind == _TEXT and frame.fin:
            self._deliver(frame.get_payload_as_utf8_text())
        elif kind == _BINARY and frame.fin:
            self._deliver(frame.get_payload_as_bytes())
        elif kind == _TEXT or kind == _BINARY:
            self._fragments = [frame.get_payload_as_bytes()]
            self._fragments_text = kind == _TEXT
        elif kind == _CONTINUATION and self._fragments is not None:
            self._fragments.append(frame.get_payload_as_bytes())
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), None
                self._deliver(data.decode() if self._fragments_text else data)
        elif kind == _CLOSE:
            code = frame.get_close_code()
            self.close_code = code.value if code is not None else None
            self.close_reason = (frame.get_close_message() or b"").decode(errors="replace")
            transport.send_close(code if code is not None else WSCloseCode.OK)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        """The TCP connection ended: every waiting and later receive raises."""
        self.closed = TransportClosed(self.close_code, self.close_reason)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(self.closed)


class PicowsTransport(Transport):
    """A connection driven by picows."""

    name = "picows"
    closed_error = TransportClosed

    def __init__(self, ws: WSTransport, receiver: _Receiver, close_timeout: float) -> None:
        super().__init__()
        self.ws = ws
        self.receiver = receiver
        self.recv = receiver.recv
        self.subprotocol = ws.response.headers.get("Sec-WebSocket-Protocol")
        self._close_timeout = close_timeout

    def send(self, data: bytes, text: bool) -> None:
        # A disconnected picows transport writes nothing; the next receive raises.
        self.ws.send(_TEXT if text else _BINARY, data)

    def abort(self) -> None:
        self.ws.disconnect(graceful=False)

    async def close(self) -> None:
        receiver = self.receiver
        if receiver.closed is None:
            self.ws.send_close(WSCloseCode.OK)
            try:
                async with asyncio.timeout(self._close_timeout):
                    await self.ws.wait_disconnected()
            except TimeoutError:
                self.ws.disconnect(graceful=False)
                await self.ws.wait_disconnected()
        # no close frame came: 1006, as websockets reports it
        self.close_code = receiver.close_code if receiver.close_code is not None else 1006
        self.close_reason = receiver.close_reason


def _max_frame(options: Mapping[str, Any]) -> int:
    """websockets' ``max_size`` (1 MiB by default, None: no limit) as picows' limit."""
    size = options.get("max_size", 2**20)
    return int(size) if size is not None else 2**31 - 1


async def open_picows(url: str, timeout: float, options: Mapping[str, Any]) -> PicowsTransport:
    """Open a picows connection to ``url`` within ``timeout`` seconds.

    Raises:
        ConnectFailed: as :func:`nbstream.loadtest.transport.open_transport`.
        ValueError: for options picows cannot honour (:func:`unsupported`).
    """
    refused = unsupported(options)
    if refused:
        raise ValueError(f"transport='picows' cannot honour {', '.join(refused)}: use "
                         "transport='websockets' (or 'auto')")
    headers = {"User-Agent": str(options.get("user_agent_header", "nbstream-loadtest"))}
    headers.update(dict(options.get("additional_headers") or {}))
    if options.get("origin"):
        headers["Origin"] = str(options["origin"])
    if options.get("subprotocols"):
        headers["Sec-WebSocket-Protocol"] = ", ".join(options["subprotocols"])
    context = options.get("ssl")
    open_timeout = float(options.get("open_timeout", timeout))
    try:
        async with asyncio.timeout(open_timeout):
            ws, receiver = await ws_connect(
                _Receiver, url, ssl_context=context if isinstance(context, ssl.SSLContext)
                else None, websocket_handshake_timeout=open_timeout, extra_headers=headers,
                max_frame_size=_max_frame(options), enable_auto_pong=True,
                disconnect_on_exception=True, logger_name="nbstream.loadtest")
    except picows.WSInvalidStatusError as exc:
        status = exc.response.status if exc.response is not None else 0
        raise ConnectFailed(http_error(int(status)), str(exc)) from None
    except TimeoutError:
        raise ConnectFailed(LocalError.CONNECT_TIMEOUT, "opening handshake timed out") from None
    except ConnectionRefusedError as exc:
        raise ConnectFailed(LocalError.CONNECTION_REFUSED, str(exc)) from None
    except (picows.WSError, ConnectionError) as exc:
        raise ConnectFailed(LocalError.HANDSHAKE_FAILED, str(exc)) from None
    except OSError as exc:
        raise ConnectFailed(LocalError.CONNECT_FAILED, str(exc)) from None
    assert isinstance(receiver, _Receiver)
    return PicowsTransport(ws, receiver, float(options.get("close_timeout") or 2.0))

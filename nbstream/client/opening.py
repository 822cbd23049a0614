"""Opening a client's WebSocket: the handshake, credentials, and nbstream's welcome."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from nbstream.client.options import ConnectOptions
from nbstream.logs import websockets_logger
from nbstream.protocol import ErrorCode, Message, MessageType, StreamClosed, StreamError
from nbstream.wire import WireProtocol


@dataclass
class Opened:
    """An open WebSocket, the server's welcome (nbstream protocol) and what came with it."""

    ws: ClientConnection
    welcome: Message | None
    early: list[Message]
    """Messages that arrived in the welcome's frame (a batch), in order."""


async def open_websocket(address: str, options: ConnectOptions, protocol: WireProtocol
                         ) -> Opened:
    """Connect to ``address``; for the nbstream protocol, authenticate and read the welcome.

    Raises:
        StreamClosed: the server refused (an HTTP status, or an error and a close before
            the welcome), naming the error and the close code.
        OSError, TimeoutError: the server could not be reached in ``open_timeout``.
    """
    headers = dict(options.headers or {})
    if options.token and options.token_in == "header":
        headers["Authorization"] = f"Bearer {options.token}"
    offered = options.subprotocols or ([protocol.subprotocol] if protocol.subprotocol else None)
    extra: dict[str, Any] = {"ssl": options.ssl} if options.ssl is not None else {}
    if options.origin is not None:
        extra["origin"] = options.origin
    if not protocol.in_band_heartbeat:
        extra["ping_interval"] = None  # the client's own heartbeat pings instead
    try:
        ws = await ws_connect(
            address, subprotocols=offered,  # type: ignore[arg-type]
            open_timeout=options.open_timeout, max_size=options.max_message_bytes,
            additional_headers=headers, compression=None,
            logger=websockets_logger("nbstream.websockets.client"), **extra,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        code = ErrorCode.UNAUTHORIZED if status in (401, 403) else ErrorCode.INVALID_MESSAGE
        raise StreamClosed(None, f"handshake refused with HTTP {status}",
                           StreamError(code, f"HTTP {status}",
                                       details={"status": status})) from None
    except InvalidHandshake as exc:  # dropped mid-handshake; a reconnect tries again
        raise StreamClosed(None, f"opening handshake failed: {exc}") from None
    if options.token and options.token_in == "message":
        await ws.send(protocol.encode(Message(MessageType.AUTH, {"token": options.token})).data,
                      text=True)
    if not protocol.resumable or ws.subprotocol != protocol.subprotocol:
        return Opened(ws, None, [])
    return await _welcome(ws, options, protocol)


async def _welcome(ws: ClientConnection, options: ConnectOptions, protocol: WireProtocol
                   ) -> Opened:
    """Read the welcome (or the error that refuses the connection)."""
    try:
        first = await asyncio.wait_for(ws.recv(), options.open_timeout)
    except ConnectionClosed as exc:
        raise _refused(ws, exc, None) from None
    welcome, early, error = None, [], None
    for message in protocol.decode_replies(first):
        if message.type == MessageType.WELCOME:
            welcome = message
        else:
            early.append(message)
            error = message.error or error
    if welcome is None:
        try:
            await asyncio.wait_for(ws.wait_closed(), options.open_timeout)
        except TimeoutError:
            await ws.close()
        raise _refused(ws, None, error)
    return Opened(ws, welcome, early)


def _refused(ws: ClientConnection, exc: ConnectionClosed | None,
             error: StreamError | None) -> StreamClosed:
    code, reason = ws.close_code, ws.close_reason or ""
    if exc is not None and exc.rcvd is not None:
        code, reason = exc.rcvd.code, exc.rcvd.reason
    return StreamClosed(code, reason, error)

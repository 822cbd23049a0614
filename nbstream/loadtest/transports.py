"""Which library drives a load test's connections (``transport=``), and opening one.

``"websockets"`` is always installed (:mod:`nbstream.loadtest.transport`);
``"picows"`` comes with ``pip install 'nbstream[fast]'``
(:mod:`nbstream.loadtest.picows_transport`); ``"auto"`` takes picows where it can.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.util import find_spec
from typing import Any, Literal

from nbstream.loadtest.transport import Transport, open_websockets

TransportName = Literal["auto", "websockets", "picows"]
TRANSPORTS = ("auto", "websockets", "picows")


def choose(transport: TransportName, options: Mapping[str, Any]) -> str:
    """The library that drives the connections: ``"websockets"`` or ``"picows"``.

    ``"auto"`` is picows when it is installed and honours every option (headers,
    subprotocols, TLS, compression off...), else websockets.

    Raises:
        ImportError: ``"picows"`` without picows installed.
        ValueError: ``"picows"`` with options it cannot honour, or an unknown name.
    """
    if transport == "websockets":
        return transport
    if transport not in TRANSPORTS:
        raise ValueError(f"transport={transport!r}: use one of {', '.join(TRANSPORTS)}")
    if find_spec("picows") is None:
        if transport == "auto":
            return "websockets"
        raise ImportError("transport='picows' needs picows: pip install 'nbstream[fast]'")
    from nbstream.loadtest.picows_transport import unsupported

    refused = unsupported(options)
    if refused and transport == "picows":
        raise ValueError(f"transport='picows' cannot honour {', '.join(refused)}: use "
                         "transport='websockets' (or 'auto')")
    return "websockets" if refused else "picows"


async def open_transport(url: str, timeout: float, options: Mapping[str, Any],
                         library: str = "websockets") -> Transport:
    """Open a connection to ``url`` within ``timeout`` seconds with ``library`` (what
    :func:`choose` chose); ``options`` are websockets ``connect`` keywords.

    Raises:
        ConnectFailed: naming the load tester's code (HTTP_<status>,
            CONNECTION_REFUSED, CONNECT_TIMEOUT, HANDSHAKE_FAILED, CONNECT_FAILED).
    """
    if library == "picows":
        from nbstream.loadtest.picows_transport import open_picows

        return await open_picows(url, timeout, options)
    return await open_websockets(url, timeout, options)

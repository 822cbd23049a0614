"""``nbstream.connect`` and ``nbstream.aconnect``: one set of options, two ways to call."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Unpack

from nbstream import runtime
from nbstream.client.client import Client
from nbstream.client.options import ConnectKwargs, ConnectOptions
from nbstream.client.turns import IDLE_CHECK
from nbstream.validation import signature_of

if TYPE_CHECKING:
    from nbstream.server import Server


async def aconnect(url: str | Server, **options: Unpack[ConnectKwargs]) -> Client:
    """Connect from async code (``await nbstream.aconnect(url)``); see :func:`connect`."""
    opts = ConnectOptions.from_kwargs(options)
    target = url if isinstance(url, str) else url.url
    loop = runtime.home_loop()
    client = Client(target, loop, opts)

    async def opening() -> None:
        await client._open()
        client._watchdog.arm(loop.time() + IDLE_CHECK)

    await runtime.run_on(loop, opening())
    return client


def connect(url: str | Server, **options: Unpack[ConnectKwargs]) -> Client:
    """Connect to a WebSocket server: an nbstream server, or any other with ``protocol=``.

    Args:
        url: ``ws://`` or ``wss://`` URL, or a :class:`nbstream.Server`.
        **options: See :class:`nbstream.client.ConnectOptions` (shown in full by
            ``help(nbstream.connect)``): ``protocol`` ("nbstream", "json", "text",
            "raw"), ``user``/``token`` (credentials), ``timeout`` (every receive),
            ``reconnect``, ``headers``, ``subprotocols``, ``heartbeat_interval``...

    Returns:
        A connected :class:`nbstream.Client`: ``client.chat("hi")`` with an nbstream
        server, ``client.request({...})`` with any other; ``client.close()`` at the end.

    Raises:
        StreamClosed: if the server refuses the connection (e.g. TOO_MANY_CONNECTIONS,
            close code 1013), naming the error and the close code.
        TypeError, ValueError: naming an option that is unknown or out of range.
    """
    loop = runtime.home_loop()
    return runtime.run_sync(aconnect(url, **options), loop)


_URL = [inspect.Parameter("url", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
connect.__signature__ = signature_of(connect, ConnectOptions, _URL)  # type: ignore[attr-defined]
aconnect.__signature__ = signature_of(aconnect, ConnectOptions, _URL)  # type: ignore[attr-defined]

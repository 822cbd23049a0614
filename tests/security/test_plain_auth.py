"""Who gets into a server of the json, text or raw protocol: a token in the handshake
(header or query: these protocols have no first-message step), Origin, TLS."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

import nbstream
from nbstream.protocol import Message, Session
from tests.conftest import TIMEOUT, ServerFactory

PLAIN = ["json", "text", "raw"]
TOKENS = {"tok-alice": "alice"}


async def whoami(message: Message, session: Session) -> AsyncIterator[Any]:
    yield f"{session.user}: {message.data}"


@pytest.mark.parametrize("protocol", PLAIN)
@pytest.mark.parametrize("token_in", ["header", "query"])
async def test_a_token_in_the_handshake_names_the_user(start_server: ServerFactory,
                                                       protocol: str, token_in: str) -> None:
    server = await start_server(whoami, protocol=protocol, auth=TOKENS)
    client = await nbstream.aconnect(server.url, protocol=protocol, token="tok-alice",
                                     token_in=token_in)  # type: ignore[arg-type]
    [reply] = await client.arequest("hi", timeout=TIMEOUT)
    assert reply.data == "alice: hi"
    await client.aclose()


@pytest.mark.parametrize("protocol", PLAIN)
async def test_no_token_or_a_bad_one_gets_http_401(start_server: ServerFactory,
                                                   protocol: str) -> None:
    server = await start_server("echo", protocol=protocol, auth=TOKENS)
    for token in (None, "wrong"):
        with pytest.raises(nbstream.StreamClosed, match="HTTP 401") as refused:
            await nbstream.aconnect(server.url, protocol=protocol, token=token)
        assert refused.value.error is not None
        assert refused.value.error.code == "UNAUTHORIZED"
    assert server.health()["connections"] == 0


@pytest.mark.parametrize("protocol", PLAIN)
async def test_cross_site_origins_get_403(start_server: ServerFactory, protocol: str) -> None:
    server = await start_server("echo", protocol=protocol,
                                allowed_origins=["http://notebook.example"])
    with pytest.raises(InvalidStatus, match="403"):
        await connect(server.url, origin="http://evil.example")  # type: ignore[arg-type]
    with pytest.raises(nbstream.StreamClosed, match="HTTP 403"):
        await nbstream.aconnect(server.url, protocol=protocol, origin="http://evil.example")
    client = await nbstream.aconnect(server.url, protocol=protocol,
                                     origin="http://notebook.example")
    assert (await client.arequest("ok", timeout=TIMEOUT))[0].data == "ok"
    await client.aclose()



@pytest.mark.parametrize("protocol", PLAIN)
async def test_tls_gives_wss_and_clients_verify_certificates(
    start_server: ServerFactory, certificates: tuple[ssl.SSLContext, ssl.SSLContext],
    protocol: str,
) -> None:
    server_context, client_context = certificates
    server = await start_server("echo", protocol=protocol, ssl=server_context)
    assert server.url.startswith("wss://")
    client = await nbstream.aconnect(server.url, protocol=protocol, ssl=client_context)
    assert (await client.arequest(b"\x00secure", timeout=TIMEOUT))[0].data == b"\x00secure"
    await client.aclose()
    with pytest.raises(ssl.SSLCertVerificationError):
        await nbstream.aconnect(server.url, protocol=protocol)  # no test CA in the system

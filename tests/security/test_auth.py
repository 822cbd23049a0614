"""Who gets in: tokens in a header, a query parameter or a first message; origins; TLS."""

import asyncio
import json
import logging
import ssl

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import nbstream
from nbstream.protocol import Message, Session
from tests.conftest import TIMEOUT, ServerFactory, recv_json

TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}


@pytest.mark.parametrize("token_in", ["header", "query", "message"])
async def test_a_valid_token_lets_in_by_every_route(start_server: ServerFactory,
                                                    token_in: str) -> None:
    server = await start_server("echo", auth=TOKENS)
    client = await nbstream.aconnect(server.url, token="tok-alice", token_in=token_in)  # type: ignore[arg-type]
    assert client.welcome is not None and client.welcome.data["user"] == "alice"
    assert (await client.achat("hi", timeout=TIMEOUT))[-1].type == "end"
    await client.aclose()


@pytest.mark.parametrize("token_in", ["header", "query"])
async def test_a_bad_handshake_token_gets_http_401(start_server: ServerFactory,
                                                   token_in: str) -> None:
    server = await start_server("echo", auth=TOKENS)
    with pytest.raises(nbstream.StreamClosed, match="HTTP 401") as refused:
        await nbstream.aconnect(server.url, token="wrong", token_in=token_in)  # type: ignore[arg-type]
    assert refused.value.error is not None and refused.value.error.code == "UNAUTHORIZED"


async def test_no_credentials_means_unauthorized_and_1008(start_server: ServerFactory) -> None:
    server = await start_server("echo", auth="s3cret", auth_timeout=0.3)
    async with connect(server.url) as ws:  # no token, no auth message: the deadline passes
        error = await recv_json(ws)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert error["data"]["code"] == "UNAUTHORIZED" and ws.close_code == 1008
    with pytest.raises(nbstream.StreamClosed) as refused:
        await nbstream.aconnect(server.url, token="wrong", token_in="message")
    assert refused.value.code == 1008


async def test_the_authenticated_user_drives_per_user_limits(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo", auth=TOKENS, max_connections_per_user=1)
    first = await nbstream.aconnect(server.url, token="tok-alice", user="bob")
    assert first.welcome is not None and first.welcome.data["user"] == "alice"
    with pytest.raises(nbstream.StreamClosed) as refused:
        await nbstream.aconnect(server.url, token="tok-alice")
    assert refused.value.code == 1013
    bob = await nbstream.aconnect(server.url, token="tok-bob")
    await first.aclose()
    await bob.aclose()


async def test_sync_and_async_functions_decide(start_server: ServerFactory) -> None:
    def check(token: str) -> str | None:
        return "carol" if token == "c" else None

    async def acheck(token: str) -> str | None:
        await asyncio.sleep(0)
        return "dave" if token == "d" else None

    for spec, token, user in ((check, "c", "carol"), (acheck, "d", "dave")):
        server = await start_server("echo", auth=spec)
        client = await nbstream.aconnect(server.url, token=token)
        assert client.welcome is not None and client.welcome.data["user"] == user
        await client.aclose()
        with pytest.raises(nbstream.StreamClosed, match="401"):
            await nbstream.aconnect(server.url, token="nope")


async def test_tokens_are_never_logged(start_server: ServerFactory,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = await start_server("echo", auth="very-secret-token")
    client = await nbstream.aconnect(server.url, token="very-secret-token", token_in="query")
    await client.achat("hi", timeout=TIMEOUT)
    await client.aclose()
    with pytest.raises(nbstream.StreamClosed):
        await nbstream.aconnect(server.url, token="wrong-secret-token", token_in="query")
    assert caplog.records
    assert "secret-token" not in caplog.text


async def test_rate_limit_per_user_spans_connections(start_server: ServerFactory) -> None:
    server = await start_server("echo", rate_limit_per_user=2)  # burst: 4 per user
    one = await nbstream.aconnect(server.url, user="erin")
    two = await nbstream.aconnect(server.url, user="erin")
    for client in (one, two, one, two, one, two):
        await client.asend("chat", {"text": "x"})
    outcomes: list[tuple[nbstream.Client, Message]] = []
    for client in (one, two):
        while len([o for o in outcomes if o[0] is client]) < 3:
            message = await client.arecv(TIMEOUT)
            if message.type in ("end", "error"):
                outcomes.append((client, message))
    errors = [m.error for _, m in outcomes if m.type == "error"]
    assert len(errors) == 2  # 6 messages, 4 fit in the user's bucket
    assert all(e is not None and e.code == "RATE_LIMITED" for e in errors)
    assert all(e is not None and e.details["scope"] == "user" for e in errors)
    assert all(e is not None and e.details["retry_after"] > 0 for e in errors)
    await one.aclose()
    await two.aclose()


async def test_cross_site_origins_get_403(start_server: ServerFactory) -> None:
    server = await start_server("echo", allowed_origins=["http://notebook.example"])
    with pytest.raises(InvalidStatus, match="403"):
        await connect(server.url, origin="http://evil.example")  # type: ignore[arg-type]
    async with connect(server.url, origin="http://notebook.example") as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"type": "chat", "data": {"text": "ok"}}))
        assert (await recv_json(ws))["type"] == "content"
    client = await nbstream.aconnect(server.url)  # no Origin header: not a browser
    await client.aclose()



async def test_tls_gives_wss_and_clients_verify_certificates(
    start_server: ServerFactory, certificates: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, client_context = certificates
    server = await start_server("echo", ssl=server_context)
    assert server.url.startswith("wss://")
    client = await nbstream.aconnect(server.url, ssl=client_context)
    assert (await client.achat("secure", timeout=TIMEOUT))[0].text == "secure"
    await client.aclose()
    with pytest.raises(ssl.SSLCertVerificationError):
        await nbstream.aconnect(server.url)  # the system trust store knows no test CA


async def test_handler_sees_the_authenticated_user(start_server: ServerFactory) -> None:
    async def whoami(message: Message, session: Session):  # type: ignore[no-untyped-def]
        yield f"you are {session.user}"

    server = await start_server(whoami, auth=TOKENS)
    client = await nbstream.aconnect(server.url, token="tok-bob")
    assert (await client.achat("?", timeout=TIMEOUT))[0].text == "you are bob"
    await client.aclose()

"""websockets' own protections stay on: size limits (also after inflation), handshake
timeout, header limits."""

import asyncio
import json
import zlib

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import TIMEOUT, ServerFactory, recv_json


async def test_a_compression_bomb_closes_with_1009(start_server: ServerFactory) -> None:
    server = await start_server("echo", compression="deflate", max_message_bytes=2**20)
    bomb = json.dumps({"type": "chat", "data": {"text": "0" * (64 * 2**20)}})
    assert len(zlib.compress(bomb.encode(), 9)) < 100_000  # ~63 KiB on the wire
    async with connect(server.url, compression="deflate", max_size=None) as ws:
        await ws.send(bomb)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert len(server.connections) == 0


async def test_compressed_traffic_under_the_limit_still_works(
    start_server: ServerFactory,
) -> None:
    server = await start_server("echo", compression="deflate")
    async with connect(server.url, compression="deflate") as ws:
        await ws.send(json.dumps({"type": "chat", "data": {"text": "z" * 100_000}}))
        assert (await recv_json(ws))["data"]["text"] == "z" * 100_000


async def test_a_silent_tcp_client_is_cut_at_open_timeout(start_server: ServerFactory) -> None:
    server = await start_server("echo", open_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # the server hung up
    assert asyncio.get_running_loop().time() - started < TIMEOUT
    writer.close()


async def test_too_many_headers_are_refused(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    headers = "".join(f"X-Filler-{i}: {i}\r\n" for i in range(200))
    writer.write(f"GET /ws HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    response = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert response.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert len(server.connections) == 0

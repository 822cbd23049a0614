"""The proxy as users drive it: URL, faults added and removed live, cut, pause, stop,
events; over real sockets on 127.0.0.1, with real nbstream servers and clients."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

import nbstream
from nbstream.events import FlowEvent
from nbstream.faults.pipe import Link
from nbstream.faults.shell import LinkShell
from nbstream.protocol import Backoff
from tests.conftest import TIMEOUT, ServerFactory, eventually, eventually_sync
from tests.faults.conftest import ProxyFactory, contents, numbered

FAST = Backoff(base=0.01, cap=0.05, attempts=50)


async def test_the_url_keeps_the_targets_path_and_query(start_proxy: ProxyFactory,
                                                         start_server: ServerFactory) -> None:
    server = await start_server()
    proxy = await start_proxy(server.url + "?user=ann")
    assert proxy.url == f"ws://127.0.0.1:{proxy.port}/ws?user=ann"
    assert proxy.target == server.url + "?user=ann"
    client = await nbstream.aconnect(proxy.url)
    assert (await client.achat("hi"))[-1].type == "end"
    info = next(iter(server.connections.values()))
    assert info.user == "ann"
    await client.aclose()


def test_only_ws_urls_can_be_proxied() -> None:
    with pytest.raises(ValueError, match="forwards ws:// URLs"):
        nbstream.FaultProxy("wss://example.org/ws")
    with pytest.raises(ValueError, match="forwards ws:// URLs"):
        nbstream.FaultProxy("http://example.org/")


async def test_ten_thousand_messages_pass_unchanged(start_proxy: ProxyFactory) -> None:
    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    rng = random.Random(13)
    sizes = [rng.choice([0, 1, 10, 125, 126, 1000, 4000, 65_535, 65_536, 70_000])
             if i % 97 == 0 else rng.randrange(1, 300) for i in range(10_000)]
    sent: list[str | bytes] = [
        (bytes(rng.getrandbits(8) for _ in range(n)) if i % 3 == 0 else
         "".join(rng.choice("abcdé€😀 {}\"") for _ in range(n)))
        for i, n in enumerate(sizes)]
    async with ws_serve(echo, "127.0.0.1", 0, max_size=None) as target:
        port = target.sockets[0].getsockname()[1]
        proxy = await start_proxy(f"ws://127.0.0.1:{port}/")
        seen: list[FlowEvent] = []
        proxy.events.subscribe(seen.append)  # watched: every message is also reported
        async with connect(proxy.url, max_size=None) as ws:
            async def send_all() -> None:
                for message in sent:
                    await ws.send(message)

            sender = asyncio.create_task(send_all())
            got = [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in sent]
            await sender
    assert got == sent
    frames = [e for e in seen if e.kind == "out"]
    assert len(frames) == 2 * len(sent)
    assert [e.payload for e in frames if e.direction == "c2s"] == sent


async def test_faults_are_listed_updated_removed_and_cleared(
        start_proxy: ProxyFactory, start_server: ServerFactory) -> None:
    proxy = await start_proxy(await start_server())
    latency = proxy.add("latency", ms=50, direction="both")
    drop = proxy.add("drop", match="end", probability=0.5)
    assert [(h.id, h.fault, h.direction) for h in proxy.faults] == [
        ("latency-1", "latency", "both"), ("drop-2", "drop", "down")]
    assert repr(latency) == "<fault latency-1: latency both ms=50.0 jitter_ms=0.0 (active)>"
    latency.update(ms=80)
    assert latency.params == {"ms": 80.0, "jitter_ms": 0.0, "probability": 1.0}
    with pytest.raises(ValueError, match="latency has no parameter rate"):
        latency.update(rate=3)
    latency.remove()
    latency.remove()  # safe twice
    assert not latency.active and drop.active
    assert proxy.clear() == 1 and proxy.faults == []
    with pytest.raises(ValueError, match="was removed"):
        drop.update(times=1)


async def test_faults_added_later_reach_connections_already_open(
        start_proxy: ProxyFactory, start_server: ServerFactory) -> None:
    proxy = await start_proxy(await start_server())
    client = await nbstream.aconnect(proxy.url)
    await client.achat("warm up")
    proxy.add("drop", match="end", times=1)
    with pytest.raises(TimeoutError):
        await client.achat("lost end", timeout=0.5)
    assert (await client.achat("next"))[-1].type == "end"  # times=1: only once
    await client.aclose()


async def test_cut_drops_every_connection_and_clients_resume(
        start_proxy: ProxyFactory, start_server: ServerFactory) -> None:
    server = await start_server(numbered)
    proxy = await start_proxy(server)
    clients = [await nbstream.aconnect(proxy.url, reconnect=FAST) for _ in range(3)]
    chats = [asyncio.create_task(c.achat("count", timeout=TIMEOUT)) for c in clients]
    await eventually(lambda: proxy.connections == 3)
    await asyncio.sleep(0.15)
    assert proxy.cut() == 3
    for chat in chats:
        assert contents(await chat) == [str(i) for i in range(60)]
    assert all(c.reconnects == 1 and c.recovered for c in clients)
    for client in clients:
        await client.aclose()


async def test_pause_holds_both_ways_and_resume_loses_nothing(
        start_proxy: ProxyFactory, start_server: ServerFactory) -> None:
    server = await start_server()
    proxy = await start_proxy(server)
    client = await nbstream.aconnect(proxy.url)
    proxy.pause()
    assert proxy.paused
    chat = asyncio.create_task(client.achat("held", timeout=TIMEOUT))
    await asyncio.sleep(0.3)
    assert not chat.done()
    assert next(iter(server.connections.values())).messages_in == 0  # not even up
    proxy.resume()
    assert contents(await chat) == ["held"]
    await client.aclose()


async def test_events_list_faults_and_connections(
        start_proxy: ProxyFactory, start_server: ServerFactory) -> None:
    proxy = await start_proxy(await start_server())
    proxy.add("drop", match="end", times=1)
    client = await nbstream.aconnect(proxy.url)
    with pytest.raises(TimeoutError):
        await client.achat("x", timeout=0.3)
    await client.aclose()
    await eventually(lambda: proxy.connections == 0)
    frame = proxy.events.to_frame()
    assert list(frame["kind"]) == ["open", "fault", "close"]
    # one name from open to close: the session the welcome named
    assert set(frame["session_id"]) == {client.session_id}
    fault = proxy.events.to_frame("fault").iloc[0]
    assert (fault["fault"], fault["type"], fault["direction"]) == ("drop", "end", "s2c")
    assert fault["detail"]["index"] == 2  # welcome, content, then the end
    assert fault["session_id"] == client.session_id


async def test_flow_view_shows_the_fault_between_the_messages_it_touched(
        start_proxy: ProxyFactory, start_server: ServerFactory) -> None:
    proxy = await start_proxy(await start_server())
    proxy.add("drop", match="end", times=1)
    flow = nbstream.FlowView(proxy)
    client = await nbstream.aconnect(proxy.url)
    with pytest.raises(TimeoutError):
        await client.achat("x", timeout=0.3)
    await client.achat("y")
    rows = [(row.direction, row.type) for row in flow.flow_log.rows()]
    assert rows[:6] == [("", "open"), ("s2c", "welcome"), ("c2s", "chat"), ("s2c", "content"),
                        ("s2c", "fault"), ("c2s", "chat")]
    fault_row = flow.flow_log.rows(type="fault")[0]
    assert fault_row.preview.startswith("drop index=2 type=end")
    assert json.loads(fault_row.json)["fault"] == "drop"
    assert flow.flow_log.counts == {"welcome": 1, "chat": 2, "content": 2, "end": 1}
    flow.close()
    await client.aclose()


async def test_stop_is_safe_twice_and_stop_all_stops_proxies(
        start_server: ServerFactory) -> None:
    server = await start_server()
    proxy = await nbstream.aproxy(server)
    client = await nbstream.aconnect(proxy.url, reconnect=False)
    report = await proxy.astop()
    assert report.startswith("stopped in") and report.endswith("1 connection(s) closed")
    assert await proxy.astop() == "already stopped"
    with pytest.raises(RuntimeError, match="was stopped"):
        proxy.add("latency", ms=1)
    await client.aclose()
    other = await nbstream.aproxy(server)
    assert other.running
    report_all = await asyncio.to_thread(nbstream.stop_all)  # blocks: run it off the loop
    assert f"proxy {other.url} -> {server.url}: stopped" in str(report_all)
    assert not other.running


async def test_an_unreachable_target_resets_the_client(start_proxy: ProxyFactory) -> None:
    proxy = await start_proxy("ws://127.0.0.1:9/ws")  # discard port: nothing listens
    with pytest.raises(nbstream.StreamClosed, match="opening handshake failed"):
        await nbstream.aconnect(proxy.url, reconnect=False, open_timeout=TIMEOUT)
    await eventually(lambda: any(e.kind == "close" for e in proxy.events.recent))
    closed = next(e for e in proxy.events.recent if e.kind == "close")
    assert closed.detail is not None and "target unreachable" in closed.detail["how"]


async def test_plain_http_passes_through(start_proxy: ProxyFactory,
                                         start_server: ServerFactory) -> None:
    server = await start_server()
    proxy = await start_proxy(server)
    url = f"http://127.0.0.1:{proxy.port}/health"

    def get() -> dict[str, object]:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            data: dict[str, object] = json.load(response)
            return data

    assert (await asyncio.to_thread(get))["status"] == "ok"


def test_a_script_drives_a_proxy_on_nbstreams_thread() -> None:
    server = nbstream.serve(numbered)
    proxy = nbstream.proxy(server, seed=1)
    assert threading.current_thread() is threading.main_thread()
    client = nbstream.connect(proxy.url, reconnect=FAST)
    handle = proxy.add("latency", ms=30)  # from this thread, onto the proxy's loop
    assert contents(client.chat("count", n=3)) == ["0", "1", "2"]
    handle.remove()
    assert proxy.cut() == 1
    eventually_sync(lambda: proxy.connections == 1, what="the client came back")
    assert contents(client.chat("again", n=2)) == ["0", "1"]
    client.close()
    proxy.stop()
    server.stop()


async def test_bytes_read_before_the_target_is_connected_reach_it() -> None:
    """A loop may deliver what it had read although reading was paused (uvloop does,
    for the request sent with the connection): those bytes were written nowhere and
    lost, and the client hung in its handshake."""
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def target(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.put_nowait(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    listening = await asyncio.start_server(target, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    shell = LinkShell(Link(1, random.Random(0)), loop, ("127.0.0.1", port),
                      lambda _shell, _notes: None, lambda _shell, _how: None, lambda: False)
    ours, theirs = socket.socketpair()
    await loop.connect_accepted_socket(lambda: shell.client, ours)
    assert shell.server is None  # still dialling the target
    request = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    shell.received("up", request)
    try:
        assert await asyncio.wait_for(got.get(), TIMEOUT) == request
    finally:
        shell.cut()
        theirs.close()
        listening.close()


@pytest.mark.parametrize("finish", ["close", "cut"])
async def test_a_connection_ended_before_its_socket_is_made_closes_that_socket(
        finish: str, start_server: ServerFactory) -> None:
    """The proxy's accept hands out the link before asyncio connects its socket; a fault
    removed in between (a reconnect arriving as a ``timeout`` is lifted) ended the link
    and then leaked both sockets, the client hanging in its handshake."""
    server = await start_server()
    loop = asyncio.get_running_loop()
    ended: list[str] = []
    shell = LinkShell(Link(1, random.Random(0)), loop, ("127.0.0.1", server.port),
                      lambda _shell, _notes: None, lambda _shell, how: ended.append(how),
                      lambda: False)
    getattr(shell, finish)()
    ours, theirs = socket.socketpair()
    await loop.connect_accepted_socket(lambda: shell.client, ours)
    reader, writer = await asyncio.open_connection(sock=theirs)
    try:
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    except ConnectionResetError:
        assert finish == "cut"
    assert ended == ["proxy stopped" if finish == "close" else "cut"]
    assert shell.server is None  # the target was never dialled
    writer.close()

"""FlowView on a real server and client: what it shows, and how little it sends."""

from __future__ import annotations

import asyncio

import nbstream
from nbstream.views import FlowView
from nbstream.views.commlog import CommLog
from nbstream.views.throttle import DEFAULT_INTERVAL
from tests.conftest import ServerFactory
from tests.views.conftest import eventually


async def test_shows_a_chat_in_both_directions(start_server: ServerFactory,
                                               comms: CommLog) -> None:
    server = await start_server("agent")
    view = FlowView(server)
    client = await nbstream.aconnect(server, user="alice")
    await client.achat("what is 6*7?")
    await eventually(lambda: "end" in view.counts)
    types = [row[4] for row in view.rows]
    assert set(types[:2]) == {"open", "welcome"}
    assert types[2:5] == ["chat", "tool_use", "tool_result"]
    assert {row[2] for row in view.rows} == {"", "c2s", "s2c"}
    assert view.total == view.flow_log.total == sum(view.counts.values())
    assert view.title == f"Server {server.url}"
    await client.aclose()
    view.close()


async def test_a_client_is_a_source_too(start_server: ServerFactory, comms: CommLog) -> None:
    server = await start_server("echo")
    client = await nbstream.aconnect(server)
    view = FlowView(client)
    await client.achat("hello")
    await eventually(lambda: view.counts.get("end") == 1)
    assert [row[2] for row in view.rows] == ["c2s", "s2c", "s2c"]
    await client.aclose()
    view.close()


async def test_thousands_of_messages_take_a_few_pushes_and_bounded_rows(
        start_server: ServerFactory, comms: CommLog) -> None:
    server = await start_server("echo")
    view = FlowView(server, max_rows=100)
    client = await nbstream.aconnect(server)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(1_000):
        await client.achat("x")
    await eventually(lambda: view.total == 3_001)  # welcome + 1,000 x (chat, content, end)
    seconds = loop.time() - started
    assert len(view.rows) == 100
    assert comms.updates(view) <= 10 * seconds + 3
    assert view.pushes == comms.updates(view)
    await client.aclose()
    view.close()


async def test_filters_pause_and_detail(start_server: ServerFactory, comms: CommLog) -> None:
    server = await start_server("echo")
    view = FlowView(server)
    alice = await nbstream.aconnect(server, user="alice")
    bob = await nbstream.aconnect(server, user="bob")
    await alice.achat("apples")
    await bob.achat("bananas")
    view.type_filter = "chat"
    await eventually(lambda: [row[4] for row in view.rows] == ["chat", "chat"])
    view.text_filter = "banana"
    await eventually(lambda: len(view.rows) == 1)
    assert view.rows[0][3] == bob.session_id
    assert set(view.sessions) == {alice.session_id, bob.session_id}

    view.selected = view.rows[0][0]
    assert '"text": "bananas"' in view.detail
    view.selected = -1
    assert view.detail == ""

    view.type_filter = view.text_filter = ""
    view.paused = True  # the rows freeze at once; counters go on
    frozen = list(view.rows)
    await alice.achat("cherries")
    await eventually(lambda: view.counts.get("chat") == 3)
    assert view.rows == frozen  # counters go on, rows stay still
    view.paused = False
    await eventually(lambda: any("cherries" in row[6] for row in view.rows))
    await alice.aclose()
    await bob.aclose()
    view.close()


async def test_rates_fall_to_zero_after_traffic_stops(start_server: ServerFactory,
                                                     comms: CommLog) -> None:
    server = await start_server("echo")
    view = FlowView(server)
    client = await nbstream.aconnect(server)
    for _ in range(20):
        await client.achat("x")
    await eventually(lambda: view.rates[1] > 0)
    await eventually(lambda: view.rates == [0.0, 0.0], timeout=3)
    await client.aclose()
    view.close()


async def test_close_unsubscribes_and_stops_pushing(start_server: ServerFactory,
                                                   comms: CommLog) -> None:
    server = await start_server("echo")
    view = FlowView(server)
    assert len(server.events) == 1
    view.close()
    view.close()
    assert len(server.events) == 0
    pushes = view.pushes
    client = await nbstream.aconnect(server)
    await client.achat("nobody is watching")
    await asyncio.sleep(DEFAULT_INTERVAL * 2)  # an absence: a push would have come by now
    assert view.pushes == pushes
    await client.aclose()


async def test_a_server_on_another_thread_is_watched_from_this_loop(comms: CommLog) -> None:
    server = await nbstream.aserve("echo", thread=True)  # events come from nbstream's thread
    view = FlowView(server)
    client = await nbstream.aconnect(server)
    for _ in range(50):
        await client.achat("x")
    await eventually(lambda: view.counts.get("end") == 50)
    assert view.pushes == comms.updates(view) >= 1
    await client.aclose()
    await server.astop(timeout=1.0)
    view.close()


async def test_a_refused_connection_shows_as_a_row_and_sessions_by_name(
        start_server: ServerFactory, comms: CommLog) -> None:
    server = await start_server("echo", max_connections_per_user=1)
    view = FlowView(server)
    bo = await nbstream.aconnect(server, user="bo")
    try:
        await nbstream.aconnect(server, user="bo")
        raise AssertionError("a second connection of bo must be refused")
    except nbstream.StreamClosed as refused:
        assert refused.code == 1013
    await eventually(lambda: any(row[4] == "refused" for row in view.rows))
    (row,) = [row for row in view.rows if row[4] == "refused"]
    assert "code=1013" in row[6] and "TOO_MANY_CONNECTIONS" in row[6] and row[7] == "bo"
    assert view.session_users[bo.session_id or ""] == "bo"
    assert view.kept == len(view.rows) and view.dropped == 0
    await bo.aclose()
    view.close()

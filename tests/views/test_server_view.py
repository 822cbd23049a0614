"""ServerView: connections table, health, and the broadcast / disconnect / stop buttons."""

from __future__ import annotations

import nbstream
from nbstream.views import ServerView
from nbstream.views.commlog import CommLog
from tests.conftest import TIMEOUT, ServerFactory
from tests.views.conftest import eventually


async def test_lists_connections_and_health(start_server: ServerFactory,
                                            comms: CommLog) -> None:
    server = await start_server("echo", heartbeat_interval=0.1)
    view = ServerView(server)
    alice = await nbstream.aconnect(server, user="alice")
    await alice.achat("hi")
    await eventually(lambda: "ms</td>" in view.table.value)  # a heartbeat round trip
    info = server.connections[alice.session_id or ""]
    # welcome + content + end + pings out; chat + pongs in: pings and pongs both count
    assert info.messages_out - 3 >= info.messages_in - 1 >= 1
    assert alice.session_id in view.table.value and "alice" in view.table.value
    assert "● running" in view.health.value
    assert view.session.options == (alice.session_id,)
    await alice.aclose()
    await eventually(lambda: "No connections" in view.table.value)
    view.close()


async def test_buttons_broadcast_disconnect_and_stop(start_server: ServerFactory,
                                                     comms: CommLog) -> None:
    server = await start_server("echo")
    view = ServerView(server)
    alice = await nbstream.aconnect(server, user="alice")
    bob = await nbstream.aconnect(server, user="bob")
    await eventually(lambda: len(view.session.options) == 2)

    view.message.value = "tea time"
    view.broadcast_button.click()
    assert (await alice.arecv(TIMEOUT)).text == "tea time"
    assert (await bob.arecv(TIMEOUT)).text == "tea time"
    await eventually(lambda: "to 2 connection(s)" in view.status.value)

    view.session.value = bob.session_id
    view.disconnect_button.click()
    await eventually(lambda: view.session.options == (alice.session_id,))

    view.stop_button.click()
    await eventually(lambda: "stopped in" in view.status.value)
    await eventually(lambda: view.stop_button.disabled and "stopped" in view.health.value)
    assert not server.running
    await alice.aclose()
    await bob.aclose()
    view.close()
    view.close()
    assert len(server.events) == 0


async def test_disconnect_needs_a_session(start_server: ServerFactory, comms: CommLog) -> None:
    server = await start_server("echo")
    view = ServerView(server)
    view.disconnect_button.click()
    assert "Pick a session" in view.status.value
    view.close()

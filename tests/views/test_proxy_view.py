"""ProxyView: switches and sliders change a running proxy's faults while clients talk."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

import nbstream
from nbstream.protocol import Backoff
from nbstream.views import ProxyView
from nbstream.views.commlog import CommLog
from tests.conftest import TIMEOUT, ServerFactory
from tests.views.conftest import eventually


@pytest.fixture
async def proxy(start_server: ServerFactory) -> AsyncIterator[nbstream.FaultProxy]:
    proxy = await nbstream.aproxy(await start_server("echo"))
    yield proxy
    await proxy.astop()


async def test_switches_add_and_remove_faults_sliders_change_them_in_place(
        proxy: nbstream.FaultProxy, comms: CommLog) -> None:
    view = ProxyView(proxy)
    client = await nbstream.aconnect(proxy.url)
    view.latency_ms.value = 120
    view.switches["latency"].value = True
    [latency] = proxy.faults
    assert (latency.fault, latency.direction, latency.params["ms"]) == ("latency", "down", 120)
    started = time.perf_counter()
    await client.achat("slow")
    assert time.perf_counter() - started >= 0.11
    view.jitter_ms.value = 30
    assert [f.id for f in proxy.faults] == [latency.id]  # the same fault, updated
    assert proxy.faults[0].params["jitter_ms"] == 30
    view.direction.value = "both"  # added again, the other way
    assert [(f.fault, f.direction) for f in proxy.faults] == [("latency", "both")]
    view.switches["latency"].value = False
    assert proxy.faults == []
    await client.aclose()
    view.close()


async def test_message_switches_take_the_chance_slider(proxy: nbstream.FaultProxy,
                                                       comms: CommLog) -> None:
    view = ProxyView(proxy)
    view.chance.value = 1.0
    view.switches["drop"].value = True
    view.switches["stall"].value = True
    drop, stall = proxy.faults
    assert drop.params["probability"] == 1.0 and stall.fault == "stall"
    view.chance.value = 0.5
    assert proxy.faults[0].params["probability"] == 0.5
    view.switches["stall"].value = False
    assert [f.fault for f in proxy.faults] == ["drop"]
    view.close()


async def test_cut_now_pause_and_what_was_applied(proxy: nbstream.FaultProxy,
                                                  comms: CommLog) -> None:
    view = ProxyView(proxy)
    client = await nbstream.aconnect(proxy.url, reconnect=Backoff(base=0.01, cap=0.05))
    await client.achat("first")  # the client has a position to resume from
    await eventually(lambda: "<b>1</b>connections" in view.heading.value)
    view.cut_button.click()
    assert "cut 1 connection(s)" in view.status.value
    await eventually(lambda: client.reconnects == 1 or proxy.connections == 1)
    view.pause_button.value = True
    assert proxy.paused
    chat = asyncio.create_task(client.achat("held", timeout=TIMEOUT))
    await asyncio.sleep(0.2)
    assert not chat.done()
    view.pause_button.value = False
    assert (await chat)[-1].type == "end"
    view.chance.value = 1.0
    view.switches["duplicate"].value = True
    await client.achat("twice")
    await eventually(lambda: "duplicate" in view.recent.value)
    assert "type=content" in view.recent.value or "type=end" in view.recent.value
    await client.aclose()
    view.close()
    view.close()
    assert len(proxy.events) == 0


async def test_a_stopped_proxy_disables_the_controls(proxy: nbstream.FaultProxy,
                                                     comms: CommLog) -> None:
    view = ProxyView(proxy)
    await proxy.astop()
    view._throttle.poke()
    await eventually(lambda: view.cut_button.disabled and "stopped" in view.heading.value)
    view.switches["latency"].value = True
    assert "failed: this proxy was stopped" in view.status.value
    view.close()

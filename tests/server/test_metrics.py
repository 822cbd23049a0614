"""GET /metrics: Prometheus text folded from the server's events and read at scrape time."""

import asyncio
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

import nbstream
from tests.conftest import TIMEOUT, ServerFactory, eventually, recv_json


async def scrape(server: nbstream.Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` keyed by (name, sorted labels)."""
    url = server.health_url.replace("/health", "/metrics")

    def get() -> tuple[str, str]:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.headers["Content-Type"], response.read().decode()

    content_type, text = await asyncio.to_thread(get)
    assert content_type.startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_count_what_happened(start_server: ServerFactory) -> None:
    server = await start_server(nbstream.Agent(token_delay=0), metrics=True, batch_max_size=4,
                                batch_max_wait=0.01, heartbeat_interval=0.05,
                                heartbeat_timeout=1.0)
    rtts: list[object] = []
    server.events.subscribe(lambda e: rtts.append(e) if e.kind == "heartbeat" else None)
    client = await nbstream.aconnect(server.url)
    for _ in range(3):
        await client.achat("what is 2+2?", timeout=TIMEOUT)
    await eventually(lambda: rtts)  # heartbeats, answered by the client once it is idle
    async with connect(server.url) as ws:
        await ws.send("not json")
        assert (await recv_json(ws))["data"]["code"] == "INVALID_MESSAGE"
        metrics = await scrape(server)
    assert metrics[("nbstream_messages_total", (("direction", "in"), ("type", "chat")))] == 3
    assert metrics[("nbstream_messages_total", (("direction", "out"), ("type", "end")))] == 3
    assert metrics[("nbstream_messages_total", (("direction", "out"), ("type", "tool_use")))] == 3
    assert metrics[("nbstream_messages_total", (("direction", "in"), ("type", "invalid")))] == 1
    assert metrics[("nbstream_errors_total", (("code", "INVALID_MESSAGE"),))] == 1
    assert metrics[("nbstream_connections", ())] == 2
    assert metrics[("nbstream_connections_opened_total", ())] == 2
    assert metrics[("nbstream_heartbeat_rtt_seconds_count", ())] >= 1
    assert metrics[("nbstream_batch_size_count", ())] >= 3
    assert metrics[("nbstream_outbox_queued_bytes", ())] == 0
    await client.aclose()
    await eventually(lambda: server.health()["connections"] == 0)
    after = await scrape(server)
    assert after[("nbstream_connections", ())] == 0
    assert after[("nbstream_connections_closed_total", (("code", "1000"),))] == 2


async def test_metrics_are_off_unless_asked(start_server: ServerFactory) -> None:
    server = await start_server("echo")
    with pytest.raises(urllib.error.HTTPError, match="404"):
        await scrape(server)

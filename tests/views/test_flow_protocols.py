"""Every protocol seen from both ends: FlowView rows, ``events.to_frame()`` and /metrics
for a real server and client of the nbstream, json, text and raw protocols."""

from __future__ import annotations

import json
from typing import Any

import pytest

import nbstream
from nbstream.events import BINARY, PING, PONG, TEXT
from nbstream.views import FlowView, ServerView
from nbstream.views.commlog import CommLog
from tests.conftest import TIMEOUT, ServerFactory, eventually
from tests.server.test_metrics import scrape

COLUMNS = ["at", "kind", "direction", "session", "opcode", "type", "size", "payload",
           "detail"]
SENT: dict[str, Any] = {"json": {"type": "quote", "price": 1.5}, "text": "hello",
                        "raw": "hello"}


async def exchange(client: nbstream.Client, protocol: str) -> None:
    """One text (or JSON) request and one binary request, each with its reply."""
    if protocol == "nbstream":
        await client.achat("hello", timeout=TIMEOUT)
        return
    await client.arequest(SENT[protocol], timeout=TIMEOUT)
    await client.arequest(b"\x00\x01\xff", timeout=TIMEOUT)


@pytest.mark.parametrize("protocol", ["nbstream", "json", "text", "raw"])
async def test_to_frame_gives_every_frame_of_every_protocol(start_server: ServerFactory,
                                                            protocol: str) -> None:
    server = await start_server("echo", protocol=protocol, heartbeat_interval=0.05)
    server.events.keep(1_000)
    client = await nbstream.aconnect(server.url, protocol=protocol, heartbeat_interval=0.05)
    if protocol == "nbstream":
        client.events.keep(1_000)  # an nbstream client keeps no frames unless asked
    await exchange(client, protocol)
    if protocol != "nbstream":  # WebSocket pings both ways (nbstream's are in band)
        await eventually(lambda: all("heartbeat" in set(source.events.to_frame()["kind"])
                                     for source in (client, server)),
                         what="a heartbeat round trip each way")
    await client.aclose()
    await eventually(lambda: "close" in set(server.events.to_frame()["kind"]))
    for source, frame in (("client", client.events.to_frame()),
                          ("server", server.events.to_frame())):
        assert list(frame.columns) == COLUMNS
        kept_from_the_start = source == "server" or protocol != "nbstream"
        assert (frame["kind"].iloc[0] == "open") is kept_from_the_start
        assert frame["kind"].iloc[-1] == "close"
        frames = frame[frame["direction"].notna()]
        assert set(frames["direction"]) == {"c2s", "s2c"}, source
        assert (frames["at"].diff().dropna() >= 0).all()  # in time order
        assert frames["session"].nunique() == 1 and frames["session"].iloc[0], source
        assert frames["opcode"].notna().all() and frames["type"].notna().all(), source
        data = frames[frames["opcode"].isin([TEXT, BINARY])]
        for row in data.itertuples():
            payload = row.payload
            assert isinstance(payload, str if row.opcode == TEXT else bytes), (source, row)
            assert row.size == len(payload.encode() if isinstance(payload, str) else payload)
        if protocol != "nbstream":
            texts = data[data["opcode"] == TEXT]["payload"].tolist()
            assert set(texts) == {json.dumps(SENT[protocol], separators=(",", ":"))
                                  if protocol == "json" else "hello"}, source
            assert data[data["opcode"] == BINARY]["payload"].tolist() == [b"\x00\x01\xff"] * 2
            pings = frames[frames["opcode"].isin([PING, PONG])]
            assert set(pings["type"]) == {"ping", "pong"}, source
    assert client.session_id is not None
    assert set(client.events.to_frame()["session"]) == {client.session_id}


@pytest.mark.parametrize("protocol", ["json", "text", "raw"])
async def test_flow_views_show_text_binary_and_control_frames(
    start_server: ServerFactory, comms: CommLog, protocol: str,
) -> None:
    server = await start_server("echo", protocol=protocol, heartbeat_interval=0.05)
    server_view = FlowView(server)  # from the start: it shows the open row too
    client = await nbstream.aconnect(server.url, protocol=protocol, heartbeat_interval=0.05)
    client_view = FlowView(client)
    await exchange(client, protocol)
    await eventually(lambda: {"ping", "pong"} <= set(client_view.counts)
                     and {"ping", "pong"} <= set(server_view.counts), what="pings both ways")
    await client.aclose()
    await eventually(lambda: any(row[4] == "close" for row in server_view.rows))
    await eventually(lambda: any(row[4] == "close" for row in client_view.rows))
    for view in (server_view, client_view):
        rows = view.flow_log.rows()
        kinds = {row.type for row in rows}
        assert {"close", "binary", "ping", "pong"} <= kinds
        assert "invalid" not in kinds and "frame" not in kinds
        assert ("open" in kinds) is (view is server_view)
        [binary, *_] = [row for row in rows if row.type == "binary"]
        assert binary.size == 3 and binary.preview.startswith("3 B  00 01 ff")
        assert "base64:\nAAH/" in binary.pretty()
        [sent, *_] = [row for row in rows if row.direction == "c2s" and row.type != "binary"
                      and row.type not in ("ping", "pong")]
        if protocol == "json":
            assert sent.type == "quote" and json.loads(sent.pretty()) == SENT["json"]
            assert sent.pretty() == json.dumps(SENT["json"], indent=2)
        else:
            assert (sent.type, sent.preview) == ("text", "hello")
        assert any(row.type == "pong" and row.preview.startswith("rtt ") for row in rows) \
            or view is server_view  # the client measures its own pings' round trips
        assert all(row.gap is not None for row in rows[1:] if row.session_id == rows[0].session_id)
        close = [row for row in rows if row.type == "close"][-1]
        assert close.preview == "1000 normal closure"
    server_view.close()
    client_view.close()


async def test_server_view_and_metrics_for_a_json_server(start_server: ServerFactory,
                                                         comms: CommLog) -> None:
    server = await start_server("echo", protocol="json", metrics=True,
                                heartbeat_interval=0.05)
    view = ServerView(server)
    client = await nbstream.aconnect(server.url, protocol="json", user="alice")
    for i in range(100):  # clients name their own types: the labels stay bounded
        await client.arequest({"type": f"kind-{i}"}, timeout=TIMEOUT)
    await eventually(lambda: "ms</td>" in view.table.value, what="a heartbeat round trip")
    assert "alice" in view.table.value
    metrics = await scrape(server)
    messages = {labels: value for (name, labels), value in metrics.items()
                if name == "nbstream_messages_total"}
    assert messages[(("direction", "in"), ("type", "kind-0"))] == 1
    assert messages[(("direction", "in"), ("type", "other"))] == 100 - 64
    assert messages[(("direction", "out"), ("type", "ping"))] >= 1
    assert messages[(("direction", "in"), ("type", "pong"))] >= 1
    assert not any(("type", "invalid") in labels for labels in messages)
    assert metrics[("nbstream_heartbeat_rtt_seconds_count", ())] >= 1
    await client.aclose()
    view.close()

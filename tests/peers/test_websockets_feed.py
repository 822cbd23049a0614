"""A plain websockets market feed, inspected with ``protocol="json"`` and ``"text"``
(FlowView rows read through its FlowLog) and load-tested with raw frames."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

import nbstream
from nbstream.loadtest import User
from nbstream.protocol import Message
from nbstream.views import FlowView
from nbstream.views.commlog import CommLog
from tests.conftest import TIMEOUT, eventually
from tests.peers.checks import raw_load_test, two_step_load_test
from tests.peers.market_feed import market_feed


def is_type(kind: str) -> Callable[[Message], bool]:
    return lambda message: message.type == kind


async def test_json_subscribe_stream_and_unsubscribe_show_in_flowview(comms: CommLog) -> None:
    async with market_feed() as url:
        client = await nbstream.aconnect(url, protocol="json", heartbeat_interval=0.05)
        view = FlowView(client)
        [ack] = await client.arequest({"type": "subscribe", "symbol": "ACME"},
                                      timeout=TIMEOUT)
        assert ack.type == "subscribed" and ack.data == {"type": "subscribed",
                                                         "symbol": "ACME"}
        quotes = [await client.arecv(TIMEOUT) for _ in range(3)]
        assert [q.type for q in quotes] == ["quote"] * 3
        assert all(q.data["symbol"] == "ACME" and q.data["price"] > 0 for q in quotes)
        replies = await client.arequest({"type": "unsubscribe", "symbol": "ACME"},
                                        until=is_type("unsubscribed"), timeout=TIMEOUT)
        assert replies[-1].data == {"type": "unsubscribed", "symbol": "ACME"}
        [error] = await client.arequest("not json", timeout=TIMEOUT)
        assert error.type == "error" and "JSON" in error.data["reason"]
        await eventually(lambda: view.counts.get("pong", 0) >= 1, what="a pong from the feed")
        await client.aclose()
        await eventually(lambda: "close" in {row[4] for row in view.rows})
    rows = view.flow_log.rows()
    sent = [row for row in rows if row.direction == "c2s" and row.type not in ("ping",)]
    assert [row.type for row in sent] == ["subscribe", "unsubscribe", "text"]
    [subscribed] = [row for row in rows if row.type == "subscribed"]
    assert json.loads(subscribed.pretty()) == {"type": "subscribed", "symbol": "ACME"}
    assert subscribed.pretty().startswith("{\n  ")  # indented in the detail pane
    quote_rows = [row for row in rows if row.type == "quote"]
    assert len(quote_rows) >= 3 and all('"price":' in row.preview for row in quote_rows)
    assert all(row.gap is not None and row.gap >= 0 for row in quote_rows)
    assert any(row.type == "pong" and row.preview.startswith("rtt ") for row in rows)
    assert rows[-1].type == "close" and rows[-1].preview == "1000 normal closure"
    assert {row.session_id for row in rows} == {client.session_id}
    view.close()


async def test_text_protocol_sees_the_same_feed_as_strings() -> None:
    async with market_feed() as url:
        client = await nbstream.aconnect(url, protocol="text")
        [quote] = await client.arequest('{"type": "price", "symbol": "ACME"}',
                                        timeout=TIMEOUT)
        assert quote.type == "text" and json.loads(quote.data)["price"] > 0
        frame = client.events.to_frame()
        data = frame[frame["opcode"] == 1]
        assert data["payload"].tolist() == ['{"type": "price", "symbol": "ACME"}', quote.data]
        assert data["direction"].tolist() == ["c2s", "s2c"]
        await client.aclose()


@pytest.mark.parametrize("payload", ['{{"type": "price", "symbol": "S{connection}"}}'])
async def test_raw_load_test_against_the_feed(payload: str) -> None:
    async with market_feed() as url:
        result = await raw_load_test(url, payload)
    assert (result.messages["bytes_in"] > 40).all()  # a quote came back each time


async def subscribe_then_unsubscribe(user: User) -> None:
    """Subscribe (an ack, then a first quote), unsubscribe (quotes until the ack)."""
    symbol = f"S{user.index}"
    async with user.step("subscribe"):
        ack = (await user.client.arequest({"type": "subscribe", "symbol": symbol}))[0]
        quote = await user.client.arecv()
    user.check("subscribed", ack.type == "subscribed" and ack.data["symbol"] == symbol)
    user.check("price positive", quote.type == "quote" and quote.data["price"] > 0)
    replies = await user.request({"type": "unsubscribe", "symbol": symbol},
                                 until=is_type("unsubscribed"), name="unsubscribe")
    user.check("only its own quotes", all(m.data["symbol"] == symbol for m in replies))


async def test_a_two_step_scenario_with_checks() -> None:
    async with market_feed() as url:
        await two_step_load_test(url, subscribe_then_unsubscribe, "json",
                                 ["subscribe", "unsubscribe"],
                                 ["subscribed", "price positive", "only its own quotes"])

"""User flows the scenario tests run (module level: importable by worker processes and
by ``nbstream load --scenario tests.loadtest.flows:NAME``)."""

from __future__ import annotations

from nbstream.loadtest import User


async def subscribe_and_leave(user: User) -> None:
    """Two steps against the market feed, with checks; ``user.data`` names the symbol."""
    symbol = user.data["symbol"] if user.data else "AAA"
    async with user.step("subscribe"):
        await user.client.asend({"type": "subscribe", "symbol": symbol})
        ack = await user.client.arecv()
        quote = await user.client.arecv()
    user.check("subscribed", ack.type == "subscribed" and ack.data["symbol"] == symbol)
    user.check("price positive", quote.data["price"] > 0)
    await user.sleep(0.005)
    await user.request({"type": "unsubscribe", "symbol": symbol}, name="unsubscribe",
                       until=lambda m: m.type == "unsubscribed")


async def echo_once(user: User) -> None:
    """One request per iteration, any protocol that echoes (nbstream: a chat)."""
    text = f"hello {user.iteration}"
    chat = user.client.protocol.name == "nbstream"
    replies = await user.request({"type": "chat", "data": {"text": text}} if chat else text,
                                 name="echo")
    user.check("echoed", any(text in str(reply.data) for reply in replies))

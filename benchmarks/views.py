"""What a FlowView costs the stream it watches, and what it sends to the browser.

Run on demand: ``python benchmarks/views.py [--rounds 7] [--write]``. Everything runs
in one process on one asyncio loop, as in a notebook kernel; widgets talk to a comm
that serializes each message to JSON as a kernel would, then drops it.

* Throughput: 10 connections chatting with the echo server (chat -> content + end),
  in alternating rounds without and with a FlowView on the server; messages are
  counted at the server (3 per chat). Since server, clients and view share one thread,
  the figure is messages per second of this process's CPU time, which other programs
  on the machine disturb far less than wall-clock time. The ratio is the median of
  with / without over rounds. A round with a do-nothing subscriber shows how much of
  the cost is the server publishing events at all, before any view folds them.
* Comm traffic: state updates (comm messages) a FlowView sends while 10,000 messages
  pass, and their bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nbstream
from nbstream.events import FlowEvent
from nbstream.views import FlowView
from nbstream.views.commlog import record_comms

sys.path.insert(0, str(Path(__file__).parent))
from results import machine, write_section

CONNECTIONS = 10
CHATS = 300
"""Chats per connection in one round: 10 x 300 x 3 = 9,000 messages."""


async def round_of_chats(server: nbstream.Server, chats: int = CHATS) -> float:
    """Messages per CPU second through ``server`` for CONNECTIONS x ``chats`` chats."""
    clients = [await nbstream.aconnect(server) for _ in range(CONNECTIONS)]

    async def chat(client: nbstream.Client) -> None:
        for _ in range(chats):
            await client.achat("hello", timeout=10)

    started = time.process_time()
    await asyncio.gather(*(chat(c) for c in clients))
    seconds = time.process_time() - started
    for client in clients:
        await client.aclose()
    return CONNECTIONS * chats * 3 / seconds


def _ignore(event: FlowEvent) -> None:
    """A subscriber that does nothing: the cost of publishing events alone."""


async def throughput(rounds: int) -> dict[str, list[float]]:
    """Alternating rounds: no subscriber, a do-nothing subscriber, a FlowView."""
    server = await nbstream.aserve("echo")
    rates: dict[str, list[float]] = {"none": [], "no-op subscriber": [], "FlowView": []}
    await round_of_chats(server, 50)  # warm up
    for _ in range(rounds):
        rates["none"].append(await round_of_chats(server))
        unsubscribe = server.events.subscribe(_ignore)
        rates["no-op subscriber"].append(await round_of_chats(server))
        unsubscribe()
        view = FlowView(server)
        rates["FlowView"].append(await round_of_chats(server))
        view.close()
    await server.astop()
    return rates


async def comm_traffic(messages: int = 10_000) -> tuple[int, int, float, int]:
    """(comm updates, bytes, seconds, messages seen) while ``messages`` pass a FlowView."""
    server = await nbstream.aserve("echo")
    with record_comms() as log:
        view = FlowView(server)
        started = time.perf_counter()
        per_connection = (messages - CONNECTIONS) // (3 * CONNECTIONS)  # welcome + 3 a chat
        await round_of_chats(server, per_connection)
        await asyncio.sleep(0.5)  # let the last refresh (and the rates' fall to 0) go out
        seconds = time.perf_counter() - started
        traffic = log.updates(view), log.update_bytes(view), seconds, view.total
        view.close()
    await server.astop()
    return traffic


def report(rates: dict[str, list[float]], traffic: tuple[int, int, float, int]) -> str:
    """The section for benchmarks/RESULTS.md."""
    base = statistics.median(rates["none"])
    median: Callable[[str], float] = lambda key: statistics.median(rates[key])  # noqa: E731
    ratio = {key: statistics.median(b / a for a, b in zip(rates["none"], rates[key],
                                                             strict=True))
             for key in rates}
    updates, size, seconds, seen = traffic
    rows = "\n".join(
        f"| {key} | {median(key):,.0f} | {ratio[key]:.2f}x |" for key in rates)
    return f"""
Medians of {len(rates["none"])} alternating rounds on {machine()}: {CONNECTIONS} connections
chatting with the echo server on one loop, messages counted at the server.

| watching the server | messages per CPU second | vs none |
|---|---|---|
{rows}

Comm traffic of one FlowView while {seen:,} messages passed in {seconds:.2f} s:
**{updates} state updates** ({updates / seconds:.1f}/s, {size / 1024:,.0f} KiB of JSON,
{size / max(updates, 1) / 1024:.1f} KiB each): at most about ten a second, whatever the
message rate. Baseline without a view: {base:,.0f} messages per CPU second.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    rates = asyncio.run(throughput(args.rounds))
    traffic = asyncio.run(comm_traffic())
    text = report(rates, traffic)
    print(text)
    if args.write:
        write_section("Views (benchmarks/views.py)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

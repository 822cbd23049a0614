"""What a FlowView costs the stream it watches, and what it sends to the browser.

Run on demand: ``python benchmarks/views.py [--rounds 7] [--write]``. Everything runs
in one process on one asyncio loop, as in a notebook kernel; widgets talk to a comm
that serializes each message to JSON as a kernel would, then drops it.

* Throughput: 10 connections chatting with the echo server (chat -> content + end),
  in alternating rounds without and with a FlowView on the server; messages are
  counted at the server (3 per chat). Since server, clients and view share one thread,
  the figure is messages per second of this process's CPU time, which other programs
  on the machine disturb far less than wall-clock time. Each variant's figure is its
  best round (other programs only ever slow a round down; on a busy machine medians
  wander by 10%), and the ratio compares best rounds. A round with a do-nothing
  subscriber shows how much of the cost is the server publishing events at all,
  before any view folds them.
* Costs, timed in isolation (the best of 15 alternating repeats, so they hardly depend
  on the machine's load): publishing one event with no subscriber, a do-nothing one and
  a FlowView, and one refresh of a FlowView with a full buffer of new rows.
* Comm traffic: state updates (comm messages) a FlowView sends while 10,000 messages
  pass, and their bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import nbstream
from nbstream.events import EventStream, FlowEvent
from nbstream.protocol import Message
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


def costs() -> dict[str, float]:
    """Microseconds: one event published three ways (timed in alternation), one refresh."""
    message = Message("content", {"text": "hello"})
    streams = {name: EventStream() for name in
               ("publish, no subscriber", "publish, do-nothing subscriber",
                "publish, FlowView subscribed")}

    def publisher(events: EventStream) -> Callable[[], None]:
        def publish() -> None:
            if events:  # what the server does: build an event only for subscribers
                events.emit("out", "server", "a-session", direction="s2c", message=message,
                            size=80, user=None)
        return publish

    publishers = {name: publisher(events) for name, events in streams.items()}
    figures = dict.fromkeys(streams, float("inf"))
    with record_comms():
        streams["publish, do-nothing subscriber"].subscribe(_ignore)
        view = FlowView(SimpleNamespace(events=streams["publish, FlowView subscribed"]))
        for _ in range(15):  # alternate, keep each one's best: load hits all alike
            for name, publish in publishers.items():
                figures[name] = min(figures[name], timeit.timeit(publish, number=20_000) / 0.02)
        publish = publishers["publish, FlowView subscribed"]
        rows = view.flow_log.max_rows

        def refresh() -> None:
            for _ in range(rows):
                publish()
            view._flush()

        best = min(timeit.repeat(refresh, number=1, repeat=20)) * 1e6
        figures["FlowView refresh, 200 new rows"] = best - rows * figures[
            "publish, FlowView subscribed"]
        view.close()
    return figures


def report(rates: dict[str, list[float]], unit: dict[str, float],
           traffic: tuple[int, int, float, int]) -> str:
    """The section for benchmarks/RESULTS.md."""
    best = {key: max(values) for key, values in rates.items()}
    median = {key: statistics.median(values) for key, values in rates.items()}
    rows = "\n".join(
        f"| {key} | {best[key]:,.0f} | {best[key] / best['none']:.2f}x | {median[key]:,.0f} |"
        for key in rates)
    updates, size, seconds, seen = traffic
    per_message = 1e6 / best["none"]  # microseconds of CPU per message without a view
    publish = unit["publish, do-nothing subscriber"] - unit["publish, no subscriber"]
    fold = unit["publish, FlowView subscribed"] - unit["publish, do-nothing subscriber"]
    refresh = unit["FlowView refresh, 200 new rows"] * 10 / best["none"]  # per message
    costs_rows = "\n".join(f"| {key} | {value:,.2f} µs |" for key, value in unit.items())
    return f"""
Best of {len(rates["none"])} alternating rounds on {machine()} (load average
{os.getloadavg()[0]:.1f} at the end: other programs were running): {CONNECTIONS}
connections chatting with the echo server on one loop, messages counted at the server.

| watching the server | messages per CPU second | vs none | median |
|---|---|---|---|
{rows}

Where the difference goes, from costs timed in isolation:

| cost | time |
|---|---|
{costs_rows}

Without a view a message costs {per_message:.0f} µs of CPU here. A FlowView adds
{publish:.1f} µs for the server to build each event (the core's `FlowEvent`, paid by any
subscriber), {fold:.1f} µs for the view to fold it, and its refreshes (at most ten a
second, each rendering up to 200 new rows) {refresh:.1f} µs per message at that rate:
an expected {per_message / (per_message + publish + fold + refresh):.2f}x, of which the
view's own part is {per_message / (per_message + fold + refresh):.2f}x.

Comm traffic of one FlowView while {seen:,} messages passed in {seconds:.2f} s:
**{updates} state updates** ({size / 1024:,.0f} KiB of JSON, {size / max(updates, 1) / 1024:.1f}
KiB each): at most about ten a second, whatever the message rate.
"""


async def _on_a_loop(function: Callable[[], dict[str, float]]) -> dict[str, float]:
    """Views need a running loop to schedule refreshes on."""
    return function()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    rates = asyncio.run(throughput(args.rounds))
    traffic = asyncio.run(comm_traffic())
    text = report(rates, asyncio.run(_on_a_loop(costs)), traffic)
    print(text)
    if args.write:
        write_section("Views (benchmarks/views.py)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

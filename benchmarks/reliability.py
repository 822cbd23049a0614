"""Reliability figures through the fault proxy: loss and duplicates across five kinds of
cut, and the slow-consumer drop under a stalled downstream.

Run on demand: ``python benchmarks/reliability.py [--runs 1000] [--write]``. Each run is
one streamed reply of TOKENS messages cut up to DROPS times by a fault proxy
(nbstream.proxy) while the nbstream client reconnects and resumes. ``--runs`` runs
of the cheapest kind (``cut``), ``--runs / 20`` (at least 2) of each other kind.
Prints a table and, with ``--write``, keeps it in the "Reliability" section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nbstream
from nbstream.events import FlowEvent
from nbstream.protocol import Backoff, Message, Session

sys.path.insert(0, str(Path(__file__).parent))
from results import machine, write_section

TOKENS = 200
DROPS = 5
BIG = "b" * 65_536
FAST = Backoff(base=0.01, cap=0.05, attempts=100)
HISTORY = {"history_max_messages": 2 * TOKENS}
"""Enough history for a whole reply: what is measured is loss within the window (the
half-open kind is away for about 0.6 s, 300 tokens' time)."""
HEARTBEAT = {"heartbeat_interval": 0.2, "heartbeat_timeout": 0.2, "close_timeout": 0.2}
"""The server of the ``half_open`` kind: its heartbeat is what finds the dead peer."""

KINDS: dict[str, tuple[str, dict[str, Any]] | None] = {
    "cut": None,
    "reset_peer": ("reset_peer", {"ms": 0}),
    "limit_data": ("limit_data", {"bytes": 300}),
    "timeout": ("timeout", {"ms": 100, "direction": "both"}),
    "half_open": ("timeout", {"ms": 0, "direction": "both"}),
}
"""How each kind cuts: ``proxy.cut()`` (TCP reset both ways), or a fault added to the
proxy and removed once it closed the connection."""


async def numbered(message: Message, session: Session) -> AsyncIterator[str]:
    for i in range(TOKENS):
        await asyncio.sleep(0.002)
        yield str(i)


async def flood(message: Message, session: Session) -> AsyncIterator[str]:
    for _ in range(400):
        yield BIG


async def cut_once(proxy: nbstream.FaultProxy, kind: str) -> None:
    """Cut the connection with ``kind``; returns once it is down and the fault removed."""
    how = KINDS[kind]
    if how is None:
        proxy.cut()
        return
    name, params = how
    closed = asyncio.Event()
    loop = asyncio.get_running_loop()
    unsubscribe = proxy.events.subscribe(
        lambda e: loop.call_soon(closed.set) if e.kind == "close" else None)
    handle = proxy.add(name, **params)
    try:
        await asyncio.wait_for(closed.wait(), 30)
    finally:
        unsubscribe()
        handle.remove()


async def resume_run(proxy: nbstream.FaultProxy, kind: str) -> tuple[int, int, int, int]:
    """(expected, lost, duplicated, reconnects) for one reply cut up to DROPS times."""
    client = await nbstream.aconnect(proxy.url, reconnect=FAST)
    received: list[str] = []
    step = TOKENS // (DROPS + 1)
    next_cut = asyncio.Event()

    def count(event: FlowEvent) -> None:
        if event.kind == "in" and event.message is not None and event.message.type == "content":
            received.append(event.message.text or "")
            if len(received) % step == 0:
                next_cut.set()

    client.events.subscribe(count)
    chat = asyncio.create_task(client.achat("count", timeout=120))
    for _ in range(DROPS):
        waiting = asyncio.create_task(next_cut.wait())
        await asyncio.wait([chat, waiting], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if chat.done():
            break
        next_cut.clear()
        await cut_once(proxy, kind)
    replies = await chat
    await client.aclose()
    texts = [m.text for m in replies if m.type == "content"]
    unique = len(set(texts))
    return TOKENS, TOKENS - unique, len(texts) - unique + (len(received) - len(texts)), \
        client.reconnects


async def slow_consumer(send_timeout: float, queue_bytes: int) -> tuple[float, int]:
    """(seconds from flood to drop, peak bytes buffered for the client) under a stall."""
    server = await nbstream.aserve(flood, send_timeout=send_timeout,
                                   max_queue_bytes=queue_bytes, close_timeout=0.5)
    proxy = await nbstream.aproxy(server)
    dropped = asyncio.Event()
    server.events.subscribe(lambda e: dropped.set() if e.kind == "close" else None)
    client = await nbstream.aconnect(proxy.url, reconnect=False)
    proxy.add("stall")  # downward: the client hears nothing more
    started = time.monotonic()
    await client.asend("chat", {"text": "go"})
    peak = 0
    while not dropped.is_set():
        peak = max([peak, *(info.queued_bytes for info in server.connections.values())])
        await asyncio.sleep(0.005)
    elapsed = time.monotonic() - started
    proxy.cut()
    await client.aclose()
    await proxy.astop()
    await server.astop()
    return elapsed, peak


async def measure(runs: int) -> str:
    lines = [
        f"{machine()}. Each run streams {TOKENS} messages, cut up to {DROPS} times through "
        "`nbstream.proxy` (reconnects: the cuts that came before the reply ended); the "
        "client reconnects (backoff 10-50 ms) and resumes from a "
        f"history of {HISTORY['history_max_messages']} messages. `half_open`: silence both "
        "ways until the server's heartbeat (0.2 s + 0.2 s) closes the connection.",
        "",
        "| kind of cut | runs | messages | lost | duplicated | reconnects | seconds per run |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    totals = [0, 0, 0, 0]
    for kind in KINDS:
        count = runs if kind == "cut" else max(2, runs // 20)
        server = await nbstream.aserve(numbered, **HISTORY,
                                       **(HEARTBEAT if kind == "half_open" else {}))
        proxy = await nbstream.aproxy(server)
        started = time.monotonic()
        results = [await resume_run(proxy, kind) for _ in range(count)]
        seconds = (time.monotonic() - started) / count
        await proxy.astop()
        await server.astop()
        sums = [sum(r[i] for r in results) for i in range(4)]
        totals = [t + s for t, s in zip(totals, sums, strict=True)]
        lines.append(f"| {kind} | {count} | {sums[0]:,} | {sums[1]} | {sums[2]} | "
                     f"{sums[3]:,} | {seconds:.2f} |")
    lines.append(f"| **all** | | {totals[0]:,} | **{totals[1]}** | **{totals[2]}** | "
                 f"{totals[3]:,} | |")
    drops = [await slow_consumer(1.0, 256 * 1024) for _ in range(3)]
    lines += [
        "",
        "| slow consumer (downward stall, send_timeout 1 s, max_queue_bytes 256 KiB) | value |",
        "|---|---|",
        f"| flood to drop (4002), median of 3 | {statistics.median(d[0] for d in drops):.2f} s |",
        f"| peak bytes buffered for it | {max(d[1] for d in drops):,} "
        "(bound: 256 KiB + 32 KiB + one frame = 360,648) |",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20,
                        help="runs of the cheapest kind (cut); others run runs/20, at least 2")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    text = asyncio.run(measure(args.runs))
    print(text)
    if args.write:
        write_section("Reliability (benchmarks/reliability.py)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

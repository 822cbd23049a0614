"""Reliability figures: loss and duplicates across abrupt drops, slow-consumer drops.

Run on demand: ``python benchmarks/reliability.py [--write]``. Prints a table and,
with ``--write``, keeps it in the "Reliability" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from websockets.asyncio.client import connect

import nbstream
from nbstream.protocol import Backoff, Message, Session

sys.path.insert(0, str(Path(__file__).parent))
from results import write_section

RUNS = 20
TOKENS = 200
DROPS = 5
BIG = "b" * 65_536


async def numbered(message: Message, session: Session) -> AsyncIterator[str]:
    for i in range(TOKENS):
        await asyncio.sleep(0.002)
        yield str(i)


async def flood(message: Message, session: Session) -> AsyncIterator[str]:
    for _ in range(400):
        yield BIG


async def resume_run(server: nbstream.Server) -> tuple[int, int, int]:
    """(expected, lost, duplicated) content messages for one chat cut DROPS times."""
    client = await nbstream.aconnect(server.url, reconnect=Backoff(base=0.01, cap=0.05,
                                                                   attempts=50))
    received: list[str] = []
    client.events.subscribe(lambda e: received.append(e.message.text or "")
                            if e.kind == "in" and e.message is not None
                            and e.message.type == "content" else None)
    chat = asyncio.create_task(client.achat("count", timeout=60))
    for _ in range(DROPS):
        await asyncio.sleep(TOKENS * 0.002 / (DROPS + 1))
        await server.adisconnect(client.session_id or "", abrupt=True)
    replies = await chat
    await client.aclose()
    texts = [m.text for m in replies if m.type == "content"]
    unique = len(set(texts))
    return TOKENS, TOKENS - unique, len(texts) - unique + (len(received) - len(texts))


async def slow_consumer(send_timeout: float, queue_bytes: int) -> tuple[float, int]:
    """(seconds from flood to drop, peak bytes buffered for the stuck client)."""
    server = await nbstream.aserve(flood, send_timeout=send_timeout, max_queue_bytes=queue_bytes)
    dropped = asyncio.Event()
    server.events.subscribe(lambda e: dropped.set() if e.kind == "close" else None)
    stuck = await connect(server.url, max_queue=1, max_size=None)
    started = time.monotonic()
    await stuck.send(json.dumps({"type": "chat", "data": {"text": "go"}}))
    peak = 0
    while not dropped.is_set():
        peak = max([peak, *(info.queued_bytes for info in server.connections.values())])
        await asyncio.sleep(0.005)
    elapsed = time.monotonic() - started
    stuck.transport.abort()
    await server.astop()
    return elapsed, peak


async def measure() -> str:
    server = await nbstream.aserve(numbered)
    results = [await resume_run(server) for _ in range(RUNS)]
    await server.astop()
    expected = sum(r[0] for r in results)
    lost = sum(r[1] for r in results)
    duplicated = sum(r[2] for r in results)
    drops = [await slow_consumer(1.0, 256 * 1024) for _ in range(3)]
    lines = [
        "| figure | value |",
        "|---|---|",
        f"| resume: chats cut {DROPS} times mid-stream | {RUNS} runs, {expected} messages |",
        f"| messages lost | {lost} |",
        f"| messages duplicated (delivered to the app) | {duplicated} |",
        "| slow consumer (send_timeout 1 s, max_queue_bytes 256 KiB): flood to drop, median "
        f"| {statistics.median(d[0] for d in drops):.2f} s |",
        "| slow consumer: peak bytes buffered for it | "
        f"{max(d[1] for d in drops):,} (bound: 256 KiB + 32 KiB + one frame = 360,648) |",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    text = asyncio.run(measure())
    print(text)
    if args.write:
        write_section("Reliability (benchmarks/reliability.py)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

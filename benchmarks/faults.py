"""Fault proxy figures: its own cost on a round trip, and what its timing faults measure.

Run on demand: ``python benchmarks/faults.py [--pairs 20] [--write]``. One process, one
asyncio loop, an nbstream echo server. The overhead is paired: chunks of chat round
trips go straight to the server and through the proxy (no fault), taking turns, and
the ratio is the median of the per-pair ratios. Then each timing fault is measured
on round trips through the proxy: latency and jitter (medians and interquartile
ranges of 50 round trips), bandwidth (a 200 kB reply), and the time the server's
heartbeat takes to find a half-open connection. Prints a table and, with
``--write``, keeps it in the "Fault proxy" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nbstream
from nbstream.events import FlowEvent
from nbstream.protocol import Message, Session

sys.path.insert(0, str(Path(__file__).parent))
from results import machine, write_section

CHUNK = 50
"""Round trips per chunk of the paired overhead measurement."""
SAMPLES = 50
"""Round trips per timing-fault figure."""
BIG = "x" * 10_000


async def big_reply(message: Message, session: Session) -> AsyncIterator[str]:
    if message.text == "big":
        for _ in range(20):
            yield BIG
    else:
        yield message.text or ""


async def round_trips(client: nbstream.Client, count: int) -> list[float]:
    """Milliseconds of ``count`` chat round trips, one after the other."""
    times = []
    for _ in range(count):
        started = time.perf_counter_ns()
        await client.achat("ping")
        times.append((time.perf_counter_ns() - started) / 1e6)
    return times


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def iqr(values: list[float]) -> float:
    quartiles = statistics.quantiles(values, n=4)
    return quartiles[2] - quartiles[0]


async def overhead(server: nbstream.Server, pairs: int) -> list[str]:
    proxy = await nbstream.aproxy(server)
    direct = await nbstream.aconnect(server.url)
    through = await nbstream.aconnect(proxy.url)
    await round_trips(direct, CHUNK)
    await round_trips(through, CHUNK)
    plain: list[float] = []
    proxied: list[float] = []
    ratios = []
    for pair in range(pairs):
        first, second = (direct, through) if pair % 2 == 0 else (through, direct)
        a = await round_trips(first, CHUNK)
        b = await round_trips(second, CHUNK)
        d, p = (a, b) if first is direct else (b, a)
        plain += d
        proxied += p
        ratios.append(statistics.median(p) / statistics.median(d))
    await direct.aclose()
    await through.aclose()
    await proxy.astop()
    return [
        f"| round trip, straight to the server | median {statistics.median(plain):.3f} ms, "
        f"p99 {p99(plain):.3f} ms |",
        f"| round trip through the proxy, no fault | median {statistics.median(proxied):.3f} "
        f"ms, p99 {p99(proxied):.3f} ms |",
        f"| proxy / straight (median of {pairs} paired chunks of {CHUNK}) | "
        f"**{statistics.median(ratios):.2f}x** |",
    ]


async def timing_faults(server: nbstream.Server) -> list[str]:
    proxy = await nbstream.aproxy(server, seed=1)
    client = await nbstream.aconnect(proxy.url)
    await round_trips(client, 10)
    base = await round_trips(client, SAMPLES)
    latency = proxy.add("latency", ms=50)
    slowed = await round_trips(client, SAMPLES)
    latency.update(jitter_ms=20)
    jittery = await round_trips(client, SAMPLES)
    latency.remove()
    proxy.add("bandwidth", kbps=100)
    sizes: list[int] = []
    client.events.subscribe(lambda e: sizes.append(e.size + 4) if e.kind == "in" else None)
    started = time.perf_counter()
    await client.achat("big", timeout=60)
    rate = sum(sizes) / (time.perf_counter() - started) / 1000
    await client.aclose()
    await proxy.astop()
    added = statistics.median(slowed) - statistics.median(base)
    return [
        f"| latency 50 ms (down): round trip added, median of {SAMPLES} | {added:.1f} ms |",
        f"| latency 50 ms: interquartile range of round trips | {iqr(slowed):.1f} ms |",
        f"| latency 50 ms, jitter 20 ms: interquartile range | {iqr(jittery):.1f} ms "
        "(uniform +/-20 ms: 20) |",
        f"| bandwidth 100 kB/s: a 200 kB reply arrived at | {rate:.1f} kB/s |",
    ]


async def half_open() -> list[str]:
    interval, timeout = 1.0, 0.5
    tick = min(1.0, max(0.01, min(interval, timeout) / 4))
    found: list[float] = []
    seen_found = asyncio.Event()

    class Found(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "missed its heartbeat" in record.getMessage():
                found.append(record.created)
                seen_found.set()

    logger = logging.getLogger("nbstream.server")
    handler = Found()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    times = []
    for _ in range(5):
        found.clear()
        seen_found.clear()
        server = await nbstream.aserve("echo", heartbeat_interval=interval,
                                       heartbeat_timeout=timeout, close_timeout=0.2)
        proxy = await nbstream.aproxy(server)
        client = await nbstream.aconnect(proxy.url, reconnect=False)
        pongs: list[float] = []
        ponged = asyncio.Event()

        def pong(event: FlowEvent, pongs: list[float] = pongs,
                 ponged: asyncio.Event = ponged) -> None:
            if event.kind == "heartbeat":
                pongs.append(event.at)
                ponged.set()

        server.events.subscribe(pong)
        await asyncio.wait_for(ponged.wait(), interval * 3)
        proxy.add("timeout", ms=0, direction="both")
        await asyncio.wait_for(seen_found.wait(), interval * 3)
        times.append(found[0] - pongs[-1])
        await client.aclose()
        await proxy.astop()
        await server.astop()
    logger.removeHandler(handler)
    return [f"| half-open (timeout 0 both ways) found by the heartbeat, after the last pong, "
            f"worst of 5 | {max(times):.3f} s (bound: interval {interval:g} + timeout "
            f"{timeout:g} + tick {tick:g} = {interval + timeout + tick:g} s) |"]


async def measure(pairs: int) -> str:
    server = await nbstream.aserve(big_reply)
    rows = await overhead(server, pairs)
    rows += await timing_faults(server)
    await server.astop()
    rows += await half_open()
    return "\n".join([f"{machine()}. Chat round trips with an echo handler, one loop.", "",
                      "| figure | value |", "|---|---|", *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20, help="paired chunks for the overhead")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    text = asyncio.run(measure(args.pairs))
    print(text)
    if args.write:
        write_section("Fault proxy (benchmarks/faults.py)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

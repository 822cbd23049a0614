"""Scale-out figures: broadcast latency to another server process through Redis, and
what a resume on another process (a session take-over) costs.

Run on demand: ``python benchmarks/scaleout.py [--broadcasts 500] [--write]`` (needs
``redis-server`` on PATH and redis-py). It starts its own redis-server on a free port
of 127.0.0.1, one ``nbstream serve`` process (node B) and, in this process, node A on
the same Redis plus a server with the in-memory backplane for comparison. Clients
sit in this process, so send and receive times come from one clock. Prints a table
and, with ``--write``, keeps it in the "Scale-out" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]  # this checkout's nbstream and tests
from results import machine, write_section  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

import nbstream  # noqa: E402
from nbstream.protocol import SUBPROTOCOL  # noqa: E402
from tests.scaleout.processes import RedisServer, ServerProcess  # noqa: E402

WARMUP = 50
BURST = 500
CLIENTS, CHATS, REPEATS = 20, 200, 3
RESUMES = 100


async def arrival(client: nbstream.Client, text: str) -> int:
    """perf_counter_ns when ``client`` receives the broadcast ``text``."""
    while (await client.arecv(timeout=5.0)).text != text:
        pass
    return time.perf_counter_ns()


async def latencies(publisher: nbstream.Server, clients: list[nbstream.Client], count: int
                    ) -> tuple[list[list[float]], list[float]]:
    """Per client, ms from broadcast to arrival; and ms each broadcast call took."""
    per_client: list[list[float]] = [[] for _ in clients]
    calls: list[float] = []
    for i in range(WARMUP + count):
        text = f"b{i}"
        waits = [asyncio.create_task(arrival(c, text)) for c in clients]
        started = time.perf_counter_ns()
        await publisher.abroadcast(text)
        returned = time.perf_counter_ns()
        arrived = await asyncio.gather(*waits)
        if i >= WARMUP:
            calls.append((returned - started) / 1e6)
            for row, at in zip(per_client, arrived, strict=True):
                row.append((at - started) / 1e6)
    return per_client, calls


async def burst(publisher: nbstream.Server, client: nbstream.Client) -> tuple[int, float]:
    """(broadcasts received, ms until the last) for BURST broadcasts sent back to back."""
    started = time.perf_counter_ns()
    for i in range(BURST):
        await publisher.abroadcast(f"burst{i}")
    received, last = 0, started
    try:
        while received < BURST:
            if (await client.arecv(timeout=2.0)).text == f"burst{received}":
                received += 1
                last = time.perf_counter_ns()
    except TimeoutError:
        pass
    return received, (last - started) / 1e6


async def chat_rate(backplane: str) -> float:
    """Echo chats per second: CLIENTS clients, CHATS chats each, on one server."""
    server = await nbstream.aserve("echo", backplane=backplane)
    clients = [await nbstream.aconnect(server.url) for _ in range(CLIENTS)]

    async def chat(client: nbstream.Client) -> None:
        for _ in range(CHATS):
            await client.achat("hi", timeout=5.0)

    started = time.perf_counter()
    await asyncio.gather(*(chat(c) for c in clients))
    rate = CLIENTS * CHATS / (time.perf_counter() - started)
    for client in clients:
        await client.aclose()
    await server.astop()
    return rate


async def resumes(urls: list[str], count: int) -> list[float]:
    """ms from connecting to the welcome, for ``count`` resumes of one session that visit
    ``urls`` in turn; before each resume a chat is answered and the connection is cut."""
    session, last, took = "", "", []
    for i in range(count + 1):
        query = f"?user=bench&session_id={session}&last_id={last}" if session else "?user=bench"
        started = time.perf_counter_ns()
        async with connect(urls[i % len(urls)] + query, subprotocols=[SUBPROTOCOL]) as ws:
            welcome = json.loads(await ws.recv())
            if session:
                assert welcome["data"]["recovered"] is True, welcome
                took.append((time.perf_counter_ns() - started) / 1e6)
            session = welcome["data"]["session_id"]
            await ws.send(json.dumps({"type": "chat", "data": {"text": f"hi {i}"}}))
            while (reply := json.loads(await ws.recv()))["type"] != "end":
                pass
            last = reply["id"]
            ws.transport.abort()  # a network failure: the session waits to be resumed
    return took


def row(name: str, values: list[float]) -> str:
    p99 = statistics.quantiles(values, n=100)[98]
    return f"| {name} | {statistics.median(values):.3f} | {p99:.3f} |"


def redis_version() -> str:
    """The version of the redis-server on PATH, e.g. "7.0.15"."""
    out = subprocess.run([RedisServer.binary() or "redis-server", "--version"],
                         capture_output=True, text=True, check=False).stdout
    return next((w[2:] for w in out.split() if w.startswith("v=")), "?")


async def measure(count: int, folder: Path, version: str) -> str:
    redis = RedisServer(folder / "redis.log")
    await asyncio.to_thread(redis.start)
    node_b = ServerProcess(folder / "node-b.log", redis.url, handler="echo")
    try:
        await asyncio.to_thread(node_b.start)
        node_a = await nbstream.aserve("echo", backplane=redis.url)
        alone = await nbstream.aserve("echo")
        near = await nbstream.aconnect(node_a.url)
        far = await nbstream.aconnect(node_b.url)
        solo = await nbstream.aconnect(alone.url)
        (near_ms, far_ms), redis_calls = await latencies(node_a, [near, far], count)
        (solo_ms,), memory_calls = await latencies(alone, [solo], count)
        received, burst_ms = await burst(node_a, far)
        same_node_ms = await resumes([node_a.url], RESUMES)
        other_node_ms = await resumes([node_a.url, node_b.url], RESUMES)
        rates: dict[str, list[float]] = {"memory": [], redis.url: []}
        for _ in range(REPEATS):  # interleaved: the machine's load drifts
            for backplane, runs in rates.items():
                runs.append(await chat_rate(backplane))
        memory_rate, redis_rate = (statistics.median(runs) for runs in rates.values())
        for client in (near, far, solo):
            await client.aclose()
        for server in (node_a, alone):
            await server.astop()
    finally:
        await asyncio.to_thread(node_b.stop)
        await asyncio.to_thread(redis.stop)
    return "\n".join([
        f"{count} broadcasts one at a time (after {WARMUP} warm-up), each timed from "
        "`abroadcast()` to the client's receive; clients, node A and the memory server "
        f"share one event loop, node B is another process; Redis {version} "
        f"on 127.0.0.1. {machine()}.",
        "",
        "| path | median ms | p99 ms |",
        "|---|---|---|",
        row("same process, memory backplane", solo_ms),
        row("same process, Redis backplane (client on the publishing node)", near_ms),
        row("other process through Redis pub/sub (client on node B)", far_ms),
        row("`abroadcast()` call, memory backplane", memory_calls),
        row("`abroadcast()` call, Redis backplane (returns after PUBLISH)", redis_calls),
        row("resume on the node that holds the session, connect to welcome", same_node_ms),
        row("resume on the other node (take-over), connect to welcome", other_node_ms),
        "",
        f"Burst: {BURST} broadcasts sent back to back from node A; node B's client got "
        f"{received} of them, in order, the last {burst_ms:.0f} ms after the first was sent.",
        "",
        f"Cost of sharing history: {CLIENTS} clients x {CHATS} echo chats on one server "
        f"(each chat records two messages), median of {REPEATS} interleaved runs: "
        f"{memory_rate:,.0f} chats/s with the memory "
        f"backplane, {redis_rate:,.0f} chats/s with Redis ({redis_rate / memory_rate:.0%}).",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broadcasts", type=int, default=500)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    if RedisServer.binary() is None:
        parser.error("redis-server is not installed (apt-get install redis-server)")
    with tempfile.TemporaryDirectory() as folder:
        text = asyncio.run(measure(args.broadcasts, Path(folder), redis_version()))
    print(text)
    if args.write:
        write_section("Scale-out (benchmarks/scaleout.py)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

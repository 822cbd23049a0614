"""nbstream's full stack against plain websockets, measured in the same run.

Run on demand: ``python benchmarks/echo.py [--rounds 5] [--write]``. Everything runs
in one process on one asyncio loop, as in a notebook kernel. Each figure is the
median over ``--rounds`` alternating rounds; the ratio is nbstream / plain.

Scenarios:
  * rr-1: one connection, request/response (chat -> content + end).
  * rr-100: 100 connections doing request/response concurrently.
  * stream: one chat answered by many content messages, received by the client;
    plain websockets sends one frame per message, nbstream batches (batch_max_size
    64, so the ratio shows what batching buys).

The plain server does the same application work with the json module: parse the
chat, answer with a content envelope and an end envelope.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

import nbstream
from nbstream.protocol import Message, Session

sys.path.insert(0, str(Path(__file__).parent))
from results import machine, write_section

STREAM_TOKENS = 20_000


async def plain_handler(ws: ServerConnection) -> None:
    async for frame in ws:
        chat = json.loads(frame)
        text = chat["data"]["text"]
        if text.startswith("stream:"):
            for i in range(int(text[7:])):
                await ws.send(json.dumps({"type": "content", "data": {"text": str(i)},
                                          "id": str(i), "timestamp": ""}))
        else:
            await ws.send(json.dumps({"type": "content", "data": {"text": text},
                                      "id": "c", "timestamp": ""}))
        await ws.send(json.dumps({"type": "end", "data": {}, "id": "e", "timestamp": ""}))


async def nb_handler(message: Message, session: Session) -> AsyncIterator[Message]:
    text = message.data["text"]
    if text.startswith("stream:"):
        for i in range(int(text[7:])):
            yield Message("content", {"text": str(i)})
    else:
        yield Message("content", {"text": text})


# -- clients --------------------------------------------------------------------------


async def plain_rr(url: str, n: int, latencies: list[float]) -> None:
    async with connect(url, compression=None) as ws:
        chat = json.dumps({"type": "chat", "data": {"text": "hello"}})
        for _ in range(n):
            t = time.perf_counter_ns()
            await ws.send(chat)
            while json.loads(await ws.recv())["type"] != "end":
                pass
            latencies.append((time.perf_counter_ns() - t) / 1e9)


async def nb_rr(url: str, n: int, latencies: list[float]) -> None:
    client = await nbstream.aconnect(url)
    for _ in range(n):
        t = time.perf_counter_ns()
        await client.achat("hello", timeout=30)
        latencies.append((time.perf_counter_ns() - t) / 1e9)
    await client.aclose()


async def plain_stream(url: str, tokens: int) -> int:
    async with connect(url, compression=None) as ws:
        await ws.send(json.dumps({"type": "chat", "data": {"text": f"stream:{tokens}"}}))
        count = 0
        while json.loads(await ws.recv())["type"] != "end":
            count += 1
        return count


async def nb_stream(url: str, tokens: int) -> int:
    client = await nbstream.aconnect(url)
    replies = await client.achat(f"stream:{tokens}", timeout=60)
    await client.aclose()
    return len(replies) - 1


# -- scenarios ------------------------------------------------------------------------

Result = dict[str, float]


async def request_response(url: str, client: Callable[[str, int, list[float]], Awaitable[None]],
                           connections: int, per_connection: int) -> Result:
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(client(url, per_connection, latencies) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "msgs/s": len(latencies) / elapsed,
        "p50 µs": latencies[len(latencies) // 2] * 1e6,
        "p99 µs": latencies[int(len(latencies) * 0.99)] * 1e6,
    }


async def stream(url: str, client: Callable[[str, int], Awaitable[int]]) -> Result:
    started = time.perf_counter()
    received = await client(url, STREAM_TOKENS)
    elapsed = time.perf_counter() - started
    assert received == STREAM_TOKENS, received
    return {"msgs/s": received / elapsed}


async def one_round(scale: float) -> dict[str, dict[str, Result]]:
    n1, n100 = int(5000 * scale), max(1, int(50 * scale))
    results: dict[str, dict[str, Result]] = {}
    async with serve(plain_handler, "127.0.0.1", 0, compression=None) as plain:
        url = f"ws://127.0.0.1:{plain.sockets[0].getsockname()[1]}"
        results["rr-1"] = {"plain": await request_response(url, plain_rr, 1, n1)}
        results["rr-100"] = {"plain": await request_response(url, plain_rr, 100, n100)}
        results["stream"] = {"plain": await stream(url, plain_stream)}
    server = await nbstream.aserve(nb_handler, max_connections_per_user=None)
    results["rr-1"]["nbstream"] = await request_response(server.url, nb_rr, 1, n1)
    results["rr-100"]["nbstream"] = await request_response(server.url, nb_rr, 100, n100)
    await server.astop()
    batched = await nbstream.aserve(nb_handler, batch_max_size=64, batch_max_wait=0.005)
    results["stream"]["nbstream"] = await stream(batched.url, nb_stream)
    await batched.astop()
    return results


async def deflate_round() -> dict[str, float]:
    """nbstream with and without permessage-deflate: msgs/s of 1 KB and 10 KB echoes."""
    results = {}
    for size in (1_000, 10_000):
        text = "lorem ipsum dolor sit amet " * (size // 27)
        for compression in (None, "deflate"):
            server = await nbstream.aserve(nb_handler, compression=compression)
            async with connect(server.url, compression=compression) as ws:
                chat = json.dumps({"type": "chat", "data": {"text": text}})
                started = time.perf_counter()
                for _ in range(1000):
                    await ws.send(chat)
                    while json.loads(await ws.recv())["type"] != "end":
                        pass
                results[f"{size // 1000} KB {compression or 'off'}"] = 1000 / (
                    time.perf_counter() - started)
            await server.astop()
    return results


def summarise(rounds: list[dict[str, dict[str, Result]]]) -> list[tuple[str, str, float, float,
                                                                         float]]:
    """Rows of (scenario, metric, plain median, nbstream median, ratio)."""
    rows = []
    for scenario in rounds[0]:
        for metric in rounds[0][scenario]["plain"]:
            plain = statistics.median(r[scenario]["plain"][metric] for r in rounds)
            nb = statistics.median(r[scenario]["nbstream"][metric] for r in rounds)
            ratio = nb / plain if metric == "msgs/s" else plain / nb
            rows.append((scenario, metric, plain, nb, ratio))
    return rows


def table(rows: list[tuple[str, str, float, float, float]], rounds: int) -> str:
    lines = [
        f"Medians of {rounds} rounds on {machine()}. Ratio > 1 means nbstream is better "
        "(more msgs/s, lower latency).",
        "",
        "| scenario | metric | plain websockets | nbstream | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [f"| {s} | {m} | {p:,.0f} | {n:,.0f} | {r:.2f}x |" for s, m, p, n, r in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    rounds = [asyncio.run(one_round(args.scale)) for _ in range(args.rounds)]
    text = table(summarise(rounds), args.rounds)
    deflate = [asyncio.run(deflate_round()) for _ in range(args.rounds)]
    text += ("\n\npermessage-deflate (nbstream server, websockets client, chat round trips/s; "
             "medians):\n\n| message | off | deflate | ratio |\n|---|---:|---:|---:|\n")
    for size in ("1 KB", "10 KB"):
        off = statistics.median(d[f"{size} off"] for d in deflate)
        on = statistics.median(d[f"{size} deflate"] for d in deflate)
        text += f"| {size} | {off:,.0f} | {on:,.0f} | {on / off:.2f}x |\n"
    print(text)
    if args.write:
        write_section("Echo (benchmarks/echo.py)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

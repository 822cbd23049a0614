"""nbstream's full stack against plain websockets, measured in the same run.

Run on demand: ``python benchmarks/echo.py [--pairs 40] [--rounds 5] [--write]``.
Everything runs in one process on one asyncio loop, as in a notebook kernel. The two
stacks take turns in short chunks, who goes first alternating, and the ratio is the
median of the per-pair ratios: on this noisy machine two runs of the same code a
second apart differ by up to 2x, and pairing cancels that out. Connections are opened
before the clock starts and closed after it stops: the request/response figures are
round trips, not handshakes. The ratio is nbstream / plain.

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
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
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


# -- clients: open before timing, run, close after ----------------------------------


async def plain_open(url: str) -> ClientConnection:
    return await connect(url, compression=None)


async def plain_rr(ws: ClientConnection, n: int, latencies: list[float]) -> None:
    chat = json.dumps({"type": "chat", "data": {"text": "hello"}})
    for _ in range(n):
        t = time.perf_counter_ns()
        await ws.send(chat)
        while json.loads(await ws.recv())["type"] != "end":
            pass
        latencies.append((time.perf_counter_ns() - t) / 1e9)


async def nb_open(url: str) -> nbstream.Client:
    return await nbstream.aconnect(url)


async def nb_rr(client: nbstream.Client, n: int, latencies: list[float]) -> None:
    for _ in range(n):
        t = time.perf_counter_ns()
        await client.achat("hello", timeout=30)
        latencies.append((time.perf_counter_ns() - t) / 1e9)


async def plain_stream(ws: ClientConnection, tokens: int) -> int:
    await ws.send(json.dumps({"type": "chat", "data": {"text": f"stream:{tokens}"}}))
    count = 0
    while json.loads(await ws.recv())["type"] != "end":
        count += 1
    return count


async def nb_stream(client: nbstream.Client, tokens: int) -> int:
    replies = await client.achat(f"stream:{tokens}", timeout=60)
    return len(replies) - 1


# -- scenarios ------------------------------------------------------------------------

Result = dict[str, float]
Chat = Callable[[Any, int, list[float]], Awaitable[None]]


async def paired_request_response(plain: list[ClientConnection], nb: list[nbstream.Client],
                                  per_chunk: int, pairs: int) -> dict[str, Result]:
    """Chunks of round trips taking turns (who goes first alternates); medians.

    msgs/s is the median chunk rate of each stack, the ratio the median of the
    per-pair ratios (so slow spells of the machine cancel out); latency percentiles
    are over every round trip.
    """
    stacks: dict[str, tuple[list[Any], Chat]] = {"plain": (plain, plain_rr),
                                                 "nbstream": (nb, nb_rr)}
    rates: dict[str, list[float]] = {"plain": [], "nbstream": []}
    latencies: dict[str, list[float]] = {"plain": [], "nbstream": []}
    for pair in range(pairs):
        for name in ("plain", "nbstream") if pair % 2 == 0 else ("nbstream", "plain"):
            clients, chat = stacks[name]
            started = time.perf_counter()
            await asyncio.gather(*(chat(c, per_chunk, latencies[name]) for c in clients))
            rates[name].append(len(clients) * per_chunk / (time.perf_counter() - started))
    results: dict[str, Result] = {}
    for name in stacks:
        lat = sorted(latencies[name])
        results[name] = {"msgs/s": statistics.median(rates[name]),
                         "p50 µs": lat[len(lat) // 2] * 1e6,
                         "p99 µs": lat[int(len(lat) * 0.99)] * 1e6}
    results["ratio"] = {"msgs/s": statistics.median(
        n / p for n, p in zip(rates["nbstream"], rates["plain"], strict=True))}
    return results


async def stream(client: Any, run: Callable[[Any, int], Awaitable[int]]) -> float:
    started = time.perf_counter()
    received = await run(client, STREAM_TOKENS)
    elapsed = time.perf_counter() - started
    assert received == STREAM_TOKENS, received
    return received / elapsed


async def measure(pairs: int, stream_rounds: int) -> dict[str, dict[str, Result]]:
    results: dict[str, dict[str, Result]] = {}
    async with serve(plain_handler, "127.0.0.1", 0, compression=None) as plain_server:
        plain_url = f"ws://127.0.0.1:{plain_server.sockets[0].getsockname()[1]}"
        server = await nbstream.aserve(nb_handler, max_connections_per_user=None)
        for connections, per_chunk, scenario in ((1, 250, "rr-1"), (100, 3, "rr-100")):
            plain = [await plain_open(plain_url) for _ in range(connections)]
            nb = [await nb_open(server.url) for _ in range(connections)]
            results[scenario] = await paired_request_response(plain, nb, per_chunk, pairs)
            await asyncio.gather(*(c.close() for c in plain), *(c.aclose() for c in nb))
        await server.astop()
        batched = await nbstream.aserve(nb_handler, batch_max_size=64, batch_max_wait=0.005)
        plain_client, nb_client = await plain_open(plain_url), await nb_open(batched.url)
        rates: dict[str, list[float]] = {"plain": [], "nbstream": []}
        for i in range(stream_rounds):
            for name in ("plain", "nbstream") if i % 2 == 0 else ("nbstream", "plain"):
                rates[name].append(await (stream(plain_client, plain_stream) if name == "plain"
                                          else stream(nb_client, nb_stream)))
        await plain_client.close()
        await nb_client.aclose()
        await batched.astop()
    results["stream"] = {name: {"msgs/s": statistics.median(r)} for name, r in rates.items()}
    results["stream"]["ratio"] = {"msgs/s": statistics.median(
        n / p for n, p in zip(rates["nbstream"], rates["plain"], strict=True))}
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


def table(results: dict[str, dict[str, Result]], pairs: int, stream_rounds: int) -> str:
    lines = [
        f"{machine()}. Request/response: {pairs} pairs of chunks (250 round trips on one "
        "connection, 3 on each of 100), the two stacks taking turns; msgs/s is the median "
        "chunk rate and its ratio the median of the per-pair ratios. Stream: "
        f"{STREAM_TOKENS:,} messages, medians of {stream_rounds} runs. Ratio > 1 means "
        "nbstream is better (more msgs/s, lower latency).",
        "",
        "| scenario | metric | plain websockets | nbstream | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for scenario, stacks in results.items():
        for metric, plain in stacks["plain"].items():
            nb = stacks["nbstream"][metric]
            ratio = stacks["ratio"]["msgs/s"] if metric == "msgs/s" else plain / nb
            lines.append(f"| {scenario} | {metric} | {plain:,.0f} | {nb:,.0f} | {ratio:.2f}x |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40,
                        help="request/response chunk pairs per scenario")
    parser.add_argument("--rounds", type=int, default=5, help="stream and deflate runs")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    text = table(asyncio.run(measure(args.pairs, args.rounds)), args.pairs, args.rounds)
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

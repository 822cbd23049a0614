"""``nbstream demo``: serve, chat with the agent, measure round trips, run the seed's load test.

Everything runs in this process on one asyncio loop, the way it does in a notebook
kernel, against the embedded server: no external service is needed.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from nbstream.client import aconnect
from nbstream.handlers import Agent
from nbstream.protocol import MessageType
from nbstream.server import aserve

ROUND_TRIPS = 2000
_SUMMARY_ROWS = ("connections", "requests", "completed", "errors", "duration", "throughput",
                 "connect_p50", "latency_p50", "latency_p99", "ttft_p50", "ttft_p99")
"""The rows of ``LoadResult.summary()`` the demo prints (the rest is in the DataFrame)."""


async def _demo(connections: int, messages: int) -> None:
    from nbstream.loadtest import aload_test

    server = await aserve(Agent(token_delay=0.01), max_connections_per_user=None)
    print(f"1. server listening on {server.url} (health check: {server.health_url})")

    client = await aconnect(server.url, user="demo")
    question = "what is 6*7?"
    print(f"2. chat with the scripted agent\n   you   > {question}\n   agent > ", end="")
    await client.asend(MessageType.CHAT, {"text": question})
    async for message in client:
        if message.type == MessageType.TOOL_USE:
            print(f"[tool_use {message.data['name']}({message.data['input']})] ", end="")
        elif message.type == MessageType.TOOL_RESULT:
            print(f"[tool_result {message.data['output']}] ", end="")
        elif message.type == MessageType.CONTENT:
            print(message.text, end="", flush=True)
        elif message.type == MessageType.END:
            break
    print()
    await client.aclose()

    echo = await aserve("echo")
    client = await aconnect(echo.url)
    latencies = []
    started = time.perf_counter()
    for _ in range(ROUND_TRIPS):
        sent = time.perf_counter()
        await client.achat("ping")
        latencies.append(time.perf_counter() - sent)
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(f"3. {ROUND_TRIPS} chat round trips (echo, one connection): "
          f"p50 {statistics.median(latencies) * 1e6:.0f} µs, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1e6:.0f} µs, "
          f"{ROUND_TRIPS / elapsed:,.0f} chats/s")
    await client.aclose()
    await echo.astop()

    print(f"4. the seed's load test: {connections} connections x {messages} chats "
          "with the agent (closed model)")
    result = await aload_test(server, connections=connections, messages=messages,
                              progress=False)
    summary = result.summary()
    short = summary.loc[[name for name in _SUMMARY_ROWS if name in summary.index]]
    print(short.to_string(float_format=lambda value: f"{value:,.4g}"))
    report = await server.astop()
    print(f"5. {report}")


def run_demo(connections: int = 100, messages: int = 10) -> int:
    """Run the demo; returns the process exit code."""
    asyncio.run(_demo(connections, messages))
    return 0

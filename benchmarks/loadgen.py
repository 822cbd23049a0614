"""How many messages/s one nbstream load-generator process sustains, next to a plain loop.

Run on demand (not a unit test): ``python benchmarks/loadgen.py [--seconds 5]
[--repeats 3] [--write]``. Every server runs in its own process; the load comes
from this process (or from ``processes=2`` workers). Each figure is the median of
``--repeats`` interleaved runs. "generator CPU/msg" is the CPU time the load generator
(all its processes) spent per message; "server busy" is the share of one core the
server used while the load ran: near 100 % the server, not the generator, was the
limit. The table is printed and, with ``--write``, kept in
benchmarks/RESULTS.md (section "Load generator" only).

Scenarios, 100 connections request/response:

* raw: a trivial websockets echo server; a plain ``send``/``recv`` loop against
  ``nbstream.load_test(message_type=None)``.
* envelope: nbstream's ``echo`` server (chat -> content + end); a plain loop that
  sends JSON chats and reads until ``end`` against ``nbstream.load_test()``.
* processes: ``load_test(message_type=None)`` with 1 and 2 worker processes against
  the cheapest echo server available (websockets' Sans-I/O protocol on a bare asyncio
  Protocol), so that the load generator is as close to being the limit as it can be.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

import nbstream

sys.path.insert(0, str(Path(__file__).parent))
from results import machine, write_section

CONNECTIONS = 100
SECTION = "Load generator"
NOTES = """\
Each row is the median of interleaved runs (the individual runs follow it); the
machine is shared, so single runs swing by a factor of two. "generator CPU/msg" is
the CPU time of the load generator's processes per answered message (process start
and result building included); "server busy" is the share of one core the server
used meanwhile. With two cores, a second load-generator process competes with the
server for the same cores: the `processes` ratio is bounded by what the server
leaves free, not by the merge (which runs once, after the load)."""

# -- servers, each in its own process ------------------------------------------------------


async def _echo(ws: ServerConnection) -> None:
    async for frame in ws:
        await ws.send(frame)


class _LeanEcho(asyncio.Protocol):
    """An echo server with no tasks or queues: websockets' Sans-I/O protocol only."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.protocol = ServerProtocol(max_size=None)

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    protocol.send_text(event.data)
                elif event.opcode is Opcode.BINARY:
                    protocol.send_binary(event.data)
            elif isinstance(event, Request):
                protocol.send_response(protocol.accept(event))
        self._flush()

    def eof_received(self) -> None:
        self.protocol.receive_eof()
        self._flush()

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)
            else:
                self.transport.close()


async def _serve(kind: str, ports: Any) -> None:
    if kind == "raw":
        server = await serve(_echo, "127.0.0.1", 0, compression=None, max_queue=None)
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    elif kind == "lean":
        lean = await asyncio.get_running_loop().create_server(
            _LeanEcho, "127.0.0.1", 0, backlog=1024)
        url = f"ws://127.0.0.1:{lean.sockets[0].getsockname()[1]}/"
    else:
        url = (await nbstream.aserve("echo", max_connections=None)).url
    ports.put(url)
    await asyncio.Event().wait()


def _server_main(kind: str, ports: Any) -> None:
    asyncio.run(_serve(kind, ports))


@dataclass
class ServerProcess:
    """A server in a spawned process: its URL and CPU time so far."""

    process: Any
    url: str

    @classmethod
    def start(cls, kind: str) -> ServerProcess:
        context = multiprocessing.get_context("spawn")
        ports = context.Queue()
        process = context.Process(target=_server_main, args=(kind, ports), daemon=True)
        process.start()
        return cls(process, ports.get(timeout=60))

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server process (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)


# -- load generators -------------------------------------------------------------------------


async def plain_raw(url: str, seconds: float) -> tuple[int, float]:
    """A plain websockets loop: send a text frame, wait for the echo, repeat."""
    sockets = [await connect(url, compression=None, ping_interval=None)
               for _ in range(CONNECTIONS)]
    done = 0
    start = time.perf_counter()
    stop = start + seconds

    async def run(ws: Any) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < stop:
            await ws.send(f"Test message {i}")
            await ws.recv()
            i += 1
        done += i

    await asyncio.gather(*(run(ws) for ws in sockets))
    elapsed = time.perf_counter() - start
    await asyncio.gather(*(ws.close() for ws in sockets))
    return done, done / elapsed


async def plain_envelope(url: str, seconds: float) -> tuple[int, float]:
    """A plain loop speaking the envelope: send a JSON chat, read until its ``end``."""
    sockets = [await connect(url, compression=None, ping_interval=None)
               for _ in range(CONNECTIONS)]
    done = 0
    start = time.perf_counter()
    stop = start + seconds

    async def run(ws: Any) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < stop:
            await ws.send(json.dumps({"type": "chat", "data": {"text": f"Test message {i}"}}))
            while json.loads(await ws.recv())["type"] != "end":
                pass
            i += 1
        done += i

    await asyncio.gather(*(run(ws) for ws in sockets))
    elapsed = time.perf_counter() - start
    await asyncio.gather(*(ws.close() for ws in sockets))
    return done, done / elapsed


def nbstream_load(url: str, seconds: float, **options: Any) -> tuple[int, float]:
    result = nbstream.load_test(url, connections=CONNECTIONS, duration=seconds, progress=False,
                                **options)
    summary = result.summary()["value"]
    if summary["errors"]:
        raise RuntimeError(f"load test had errors: {result.messages['error'].value_counts()}")
    return int(summary["completed"]), float(summary["throughput"])


Run = Callable[[str, float], tuple[int, float]]
"""A load generator: (url, seconds) -> (messages answered, messages/s)."""


@dataclass
class Case:
    scenario: str
    client: str
    server: str
    run: Run
    baseline: str | None = None
    rates: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    """CPU seconds of the load generator (all its processes) per message."""
    server_busy: list[float] = field(default_factory=list)
    """Fraction of one core the server used while the load ran."""


def _sync(coroutine: Callable[[str, float], Awaitable[tuple[int, float]]]) -> Run:
    return lambda url, seconds: asyncio.run(coroutine(url, seconds))  # type: ignore[arg-type]


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (worker processes)."""
    own, children = (resource.getrusage(who) for who in
                     (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


CASES = [
    Case("raw", "plain websockets loop", "raw", _sync(plain_raw)),
    Case("raw", "nbstream.load_test", "raw",
         lambda url, s: nbstream_load(url, s, message_type=None), "plain websockets loop"),
    Case("envelope", "plain websockets loop", "nbstream", _sync(plain_envelope)),
    Case("envelope", "nbstream.load_test", "nbstream", lambda url, s: nbstream_load(url, s),
         "plain websockets loop"),
    Case("processes", "load_test processes=1", "lean",
         lambda url, s: nbstream_load(url, s, message_type=None)),
    Case("processes", "load_test processes=2", "lean",
         lambda url, s: nbstream_load(url, s, message_type=None, processes=2),
         "load_test processes=1"),
]


def measure(seconds: float, repeats: int) -> list[Case]:
    servers = {kind: ServerProcess.start(kind) for kind in ("raw", "nbstream", "lean")}
    try:
        nbstream_load(servers["raw"].url, 0.2, message_type=None)  # imports pandas etc. once
        for round_ in range(repeats):
            for case in CASES:
                server = servers[case.server]
                server_cpu, client_cpu = server.cpu_seconds(), _cpu_seconds()
                count, rate = case.run(server.url, seconds)
                case.rates.append(rate)
                case.client_cpu.append((_cpu_seconds() - client_cpu) / count)
                case.server_busy.append((server.cpu_seconds() - server_cpu) / count * rate)
                print(f"  round {round_ + 1}: {case.scenario:9} {case.client:24} "
                      f"{rate:9,.0f} msg/s, load generator {case.client_cpu[-1] * 1e6:4.0f} "
                      f"µs CPU/msg, server busy {case.server_busy[-1]:4.0%}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    return CASES


def table(cases: list[Case]) -> str:
    median = {(c.scenario, c.client): statistics.median(c.rates) for c in cases}
    lines = ["| scenario | load generator | messages/s (median) | runs | ratio "
             "| generator CPU/msg | server busy |",
             "|---|---|---:|---|---|---:|---:|"]
    for c in cases:
        rate = median[(c.scenario, c.client)]
        ratio = (f"**{rate / median[(c.scenario, c.baseline)]:.2f}x** {c.baseline}"
                 if c.baseline else "")
        runs = ", ".join(f"{r / 1000:.1f}k" for r in c.rates)
        lines.append(f"| {c.scenario} | {c.client} | {rate:,.0f} | {runs} | {ratio} "
                     f"| {statistics.median(c.client_cpu) * 1e6:.0f} µs "
                     f"| {statistics.median(c.server_busy):.0%} |")
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's model name (Linux), for the machine line."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    match = re.search(r"model name\s*:\s*(.*)", info)
    return match.group(1) if match else "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    where = f"{machine()}, {cpu_model()}"
    print(f"{where}\n{CONNECTIONS} connections, {args.seconds:g} s per run, "
          f"{args.repeats} rounds", flush=True)
    result = table(measure(args.seconds, args.repeats))
    print(result)
    if args.write:
        write_section(SECTION, (
            f"`python benchmarks/loadgen.py --seconds {args.seconds:g} --repeats "
            f"{args.repeats} --write`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on {where}."
            f"\n\n{result}\n\n{NOTES}"))
        print("written to benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

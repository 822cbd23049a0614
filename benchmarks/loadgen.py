"""How many messages/s one nbstream load-generator process sustains, next to a plain loop.

Run on demand (not a unit test): ``python benchmarks/loadgen.py [--seconds 5]
[--repeats 3] [--only raw json ...] [--quick] [--write]``. Every server runs in its
own process; the load comes from this process (or from ``processes=2`` workers). Each
figure is the median of ``--repeats`` interleaved runs (the order reverses every
other round); a ratio is the median of the per-round ratios. "generator CPU/msg" is
the CPU time the load generator (all its processes) spent per message; "server busy"
is the share of one core the server used while the load ran: near 100 % the server,
not the generator, was the limit. ``--quick`` checks that every case runs (1 s, one
round, no Dask). The table is printed and, with ``--write``, kept in
benchmarks/RESULTS.md (section "Load generator" only).

Scenarios, 100 connections request/response, against the cheapest echo server at hand
(benchmarks/servers.py: C on libwebsockets, else picows) unless said otherwise:

* raw: a plain websockets ``send``/``recv`` loop against ``load_test(protocol="raw")``
  on each transport (websockets, picows). ``load_test`` runs as in any script, on
  nbstream's own loop (uvloop's when installed); the plain loop also runs on uvloop,
  to show what the loop alone is worth. Two floors: the same exchange on picows with
  nothing else (no rows, deadlines or protocol), a coroutine per connection awaiting a
  future per reply (load_test's design), and callbacks only (each reply's callback
  sends the next request): what each design costs at least on this machine.
* envelope: nbstream's ``echo`` server (chat -> content + end; the Python server is
  the limit): a plain loop that sends JSON chats and reads until ``end``, against
  ``load_test()`` on each transport.
* json: the same JSON work on both sides against the echo: a plain loop encoding a
  dict and decoding the reply, against a scenario doing ``user.request(dict)`` (the
  reply decoded) with ``protocol="json"``; and an envelope chat decoded as an
  envelope (``protocol="nbstream"``, ``until``) against a plain loop doing the same.
* scenario: a flow doing one ``user.request`` per iteration against the built-in
  closed model doing the same exchange, on each transport: what scripting costs.
* processes: ``load_test(transport="picows")`` with 1 and 2 worker processes; the
  ceiling the cores allow is computed from the same run (below the table).
* dask: ``load_test(protocol="raw")`` with ``cluster=`` a Dask ``LocalCluster`` of 1
  and of 2 worker processes (one thread each), started for each run, with Dask's
  default worker environment and without its ``MALLOC_TRIM_THRESHOLD_`` (when
  dask.distributed is installed: ``pip install 'nbstream[dask]'``).

benchmarks/generator_costs.py adds what is not a rate: the open model at 20,000
msg/s, the recorder's cost per message, and the import cost of a worker.
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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect
from websockets.asyncio.client import connect

import nbstream

sys.path.insert(0, str(Path(__file__).parent))
from results import machine, write_section
from servers import ServerProcess, fastest_echo

CONNECTIONS = 100
SECTION = "Load generator"
NOTES = """\
Each row is the median of interleaved runs (the individual runs follow it; the order
of the rows reverses every other round); a ratio is the median of the per-round
ratios. Single runs swing by a factor of two on this machine. nbstream's rows run
as a script's load test does, on nbstream's own loop: uvloop's, which the `server` and
`test` extras install (in a notebook a one-process load test runs on the kernel's
asyncio loop; `processes=2` workers run on uvloop's); the plain loops run on asyncio's
unless the row says uvloop. Before the first row the process frees a 1 MiB block, so that
glibc's mmap threshold stands where a long-running process has it: in a fresh process,
asyncio maps and unmaps its 256 KiB read buffer on every read until then, and a plain
websockets loop makes about 0.6x its rate here (nbstream's rows are not affected: they
were measured at the same rate either way). The raw rows run
against the C server: against a websockets echo server (a core of Python of its own)
the server is the limit and both generators compete with it for the two cores, which
measures the server. "generator CPU/msg" is
the CPU time of the load generator's processes per answered message (process start
and result building included); "server busy" is the share of one core the server
used meanwhile (near 100 %, the server was the limit). Results of worker processes
merge once, after the load: the merge costs no throughput. The dask rows start a
LocalCluster for each run, from a process of their own: its start-up is not in
messages/s (measured from the first send) but is in CPU/msg, as process start-up is
in the processes rows; a cluster's start-up (scheduler, nannies, workers and their
imports) takes seconds of CPU, a large share of those rows' CPU/msg: compare their
messages/s. Dask's Nanny
starts workers with MALLOC_TRIM_THRESHOLD_=65536 (glibc then returns freed memory to
the system at once and stops adapting its mmap threshold); "no malloc trim" rows unset
it with `dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_":
None})`."""

# -- load generators -------------------------------------------------------------------------


Exchange = Callable[[Any, int], Awaitable[None]]
"""One request/response of a plain loop on a websockets connection: (ws, i) -> None."""


async def raw_exchange(ws: Any, i: int) -> None:
    """Send a text frame, wait for the echo."""
    await ws.send(f"Test message {i}")
    await ws.recv()


async def envelope_exchange(ws: Any, i: int) -> None:
    """Send a JSON chat, read until its ``end``."""
    await ws.send(json.dumps({"type": "chat", "data": {"text": f"Test message {i}"}}))
    while json.loads(await ws.recv())["type"] != "end":
        pass


async def plain_loop(url: str, seconds: float, exchange: Exchange) -> tuple[int, float]:
    """A plain websockets loop over CONNECTIONS connections, repeating ``exchange``."""
    sockets = [await connect(url, compression=None, ping_interval=None)
               for _ in range(CONNECTIONS)]
    done = 0
    start = time.perf_counter()
    stop = start + seconds

    async def run(ws: Any) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < stop:
            await exchange(ws, i)
            i += 1
        done += i

    await asyncio.gather(*(run(ws) for ws in sockets))
    elapsed = time.perf_counter() - start
    await asyncio.gather(*(ws.close() for ws in sockets))
    return done, done / elapsed


async def json_exchange(ws: Any, i: int) -> None:
    """Encode a dict, decode the echoed one."""
    await ws.send(json.dumps({"type": "quote", "symbol": "ABC", "i": i}))
    json.loads(await ws.recv())


async def envelope_echo_exchange(ws: Any, i: int) -> None:
    """Encode an envelope (type, data, id, timestamp), decode the echoed one."""
    await ws.send(json.dumps({"type": "chat", "data": {"text": f"Test message {i}"},
                              "id": f"m{i}", "timestamp": "2026-01-01T00:00:00.000+00:00"}))
    json.loads(await ws.recv())


class _Echoes(WSListener):
    """One connection of a floor loop: counts replies, and either sends the next request
    from picows' frame callback or hands the reply to the coroutine awaiting it."""

    def __init__(self, callbacks: bool) -> None:
        super().__init__()
        self.callbacks = callbacks
        self.stop = 0.0
        self.count = 0
        self.waiter: asyncio.Future[str] | None = None
        self.finished = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        reply = frame.get_payload_as_utf8_text()
        if not self.callbacks:
            waiter, self.waiter = self.waiter, None
            assert waiter is not None
            waiter.set_result(reply)
            return
        self.count += 1
        if time.perf_counter() < self.stop:
            transport.send(WSMsgType.TEXT, f"Test message {self.count}".encode())
        elif not self.finished.done():
            self.finished.set_result(None)


async def picows_floor(url: str, seconds: float, callbacks: bool) -> tuple[int, float]:
    """The raw exchange with nothing but picows: no rows, no deadlines, no protocol.

    ``callbacks``: each reply's frame callback sends the next request (no coroutine,
    no future per message). Else a coroutine per connection awaits a future per reply,
    as load_test's connections do. What each design costs at least on this machine.
    """
    loop = asyncio.get_running_loop()
    connections = [(await ws_connect(lambda: _Echoes(callbacks), url))[1]
                   for _ in range(CONNECTIONS)]
    echoes = [listener for listener in connections if isinstance(listener, _Echoes)]

    async def run(echo: _Echoes) -> None:
        while time.perf_counter() < echo.stop:
            echo.transport.send(WSMsgType.TEXT, f"Test message {echo.count}".encode())
            echo.waiter = waiter = loop.create_future()
            await waiter
            echo.count += 1

    start = time.perf_counter()
    for echo in echoes:
        echo.stop = start + seconds
        if callbacks:
            echo.transport.send(WSMsgType.TEXT, b"Test message 0")
    await asyncio.gather(*(echo.finished if callbacks else run(echo) for echo in echoes))
    elapsed = time.perf_counter() - start
    for echo in echoes:
        echo.transport.disconnect()
    done = sum(echo.count for echo in echoes)
    return done, done / elapsed


def nbstream_load(url: str, seconds: float, **options: Any) -> tuple[int, float]:
    result = nbstream.load_test(url, connections=CONNECTIONS, duration=seconds, progress=False,
                                **options)
    summary = result.summary()["value"]
    if summary["errors"]:
        raise RuntimeError(f"load test had errors: {result.messages['error'].value_counts()}")
    return int(summary["completed"]), float(summary["throughput"])


def nbstream_on_dask(url: str, seconds: float, workers: int,
                     malloc_trim: bool = True) -> tuple[int, float]:
    """``load_test(message_type=None)`` on a new LocalCluster of ``workers`` processes.

    Runs in a process of its own, so that nothing of Dask stays in this one for the
    other rows (the Nanny writes its variables into its parent's environment, and
    the scheduler's threads and imports would stay). ``malloc_trim=False`` starts the
    workers without the ``MALLOC_TRIM_THRESHOLD_=65536`` that the Nanny sets by default.
    """
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_on_dask, url, seconds, workers, malloc_trim).result()


def _on_dask(url: str, seconds: float, workers: int, malloc_trim: bool) -> tuple[int, float]:
    import dask
    from distributed import Client, LocalCluster

    config = {} if malloc_trim else {"distributed.nanny.pre-spawn-environ."
                                     "MALLOC_TRIM_THRESHOLD_": None}
    with (dask.config.set(config),
          LocalCluster(n_workers=workers, threads_per_worker=1,  # type: ignore[no-untyped-call]
                       dashboard_address=None) as cluster,
          Client(cluster, set_as_default=False) as client):  # type: ignore[no-untyped-call]
        return nbstream_load(url, seconds, message_type=None, cluster=client)


async def one_request(user: nbstream.loadtest.User) -> None:
    """The scenario rows' flow: the built-in flow's exchange, scripted."""
    await user.request(f"Test message {user.iteration}")


async def one_quote(user: nbstream.loadtest.User) -> None:
    """The json rows' flow: a dict out, the echoed dict decoded."""
    await user.request({"type": "quote", "symbol": "ABC", "i": user.iteration})


def _any(message: Any) -> bool:
    return True


async def one_envelope(user: nbstream.loadtest.User) -> None:
    """The envelope-echo rows' flow: a chat envelope out, the echoed one decoded."""
    await user.request({"type": "chat", "data": {"text": f"Test message {user.iteration}"}},
                       until=_any)


def nbstream_scenario(url: str, seconds: float, flow: Any = one_request,
                      protocol: str = "raw", transport: str = "auto") -> tuple[int, float]:
    return nbstream_load(url, seconds, protocol=protocol, scenario=flow, transport=transport)


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


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (worker processes)."""
    own, children = (resource.getrusage(who) for who in
                     (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _plain(exchange: Exchange, run: Callable[[Any], tuple[int, float]] = asyncio.run) -> Run:
    return lambda url, seconds: run(plain_loop(url, seconds, exchange))


def _load(**options: Any) -> Run:
    return lambda url, seconds: nbstream_load(url, seconds, **options)


def _scenario(flow: Any, protocol: str, transport: str) -> Run:
    return lambda url, seconds: nbstream_scenario(url, seconds, flow, protocol, transport)


PLAIN = "plain websockets loop"
CASES = [
    Case("raw", PLAIN, "fast", _plain(raw_exchange)),
    Case("raw", "plain loop on uvloop", "fast", _plain(raw_exchange, uvloop.run), PLAIN),
    Case("raw", "load_test, websockets", "fast", _load(protocol="raw", transport="websockets"),
         PLAIN),
    Case("raw", "load_test, picows", "fast", _load(protocol="raw", transport="picows"), PLAIN),
    Case("raw", "floor: picows, a coroutine per connection", "fast",
         lambda url, seconds: uvloop.run(picows_floor(url, seconds, callbacks=False)), PLAIN),
    Case("raw", "floor: picows callbacks only", "fast",
         lambda url, seconds: uvloop.run(picows_floor(url, seconds, callbacks=True)), PLAIN),
    Case("envelope", PLAIN, "nbstream", _plain(envelope_exchange)),
    Case("envelope", "load_test, websockets", "nbstream", _load(transport="websockets"),
         PLAIN),
    Case("envelope", "load_test, picows", "nbstream", _load(transport="picows"), PLAIN),
    Case("json", PLAIN, "fast", _plain(json_exchange)),
    Case("json", "scenario json, picows", "fast", _scenario(one_quote, "json", "picows"),
         PLAIN),
    Case("json", "plain loop, envelopes", "fast", _plain(envelope_echo_exchange)),
    Case("json", "scenario nbstream, picows", "fast",
         _scenario(one_envelope, "nbstream", "picows"), "plain loop, envelopes"),
    Case("scenario", "closed model, websockets", "fast",
         _load(protocol="raw", transport="websockets")),
    Case("scenario", "scenario, websockets", "fast",
         _scenario(one_request, "raw", "websockets"), "closed model, websockets"),
    Case("scenario", "closed model, picows", "fast", _load(protocol="raw", transport="picows")),
    Case("scenario", "scenario, picows", "fast", _scenario(one_request, "raw", "picows"),
         "closed model, picows"),
    Case("processes", "picows processes=1", "fast", _load(protocol="raw", transport="picows")),
    Case("processes", "picows processes=2", "fast",
         _load(protocol="raw", transport="picows", processes=2), "picows processes=1"),
]
if find_spec("distributed") is not None:
    CASES += [
        Case("dask", "LocalCluster, 1 worker", "fast",
             lambda url, s: nbstream_on_dask(url, s, workers=1)),
        Case("dask", "LocalCluster, 2 workers", "fast",
             lambda url, s: nbstream_on_dask(url, s, workers=2), "LocalCluster, 1 worker"),
        Case("dask", "LocalCluster, 1 worker, no malloc trim", "fast",
             lambda url, s: nbstream_on_dask(url, s, workers=1, malloc_trim=False),
             "LocalCluster, 1 worker"),
        Case("dask", "LocalCluster, 2 workers, no malloc trim", "fast",
             lambda url, s: nbstream_on_dask(url, s, workers=2, malloc_trim=False),
             "LocalCluster, 1 worker, no malloc trim"),
    ]


def raise_mmap_threshold() -> None:
    """Put glibc's allocator in the state a long-running process is in, before any row.

    asyncio reads each socket into a fresh 256 KiB buffer. Until glibc's dynamic mmap
    threshold has risen above that (it rises when a block it mapped is freed), every
    read maps, remaps and unmaps it: a plain websockets loop in a fresh process makes
    about 26k envelopes/s instead of 42k (RESULTS.md). Freeing one 1 MiB block raises it.
    """
    block = bytes(1 << 20)  # mapped: above the 128 KiB it starts at
    del block


def measure(seconds: float, repeats: int, cases: list[Case]) -> tuple[list[Case], str]:
    """Run ``cases`` ``repeats`` times, interleaved; returns them and the fast server used."""
    servers = {"nbstream": ServerProcess.start("nbstream")}
    servers["fast"], fast = fastest_echo()
    try:
        raise_mmap_threshold()
        nbstream_load(servers["fast"].url, 0.2, protocol="raw")  # imports pandas etc. once
        for round_ in range(repeats):
            for case in cases if round_ % 2 == 0 else cases[::-1]:
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
        for server in {id(s): s for s in servers.values()}.values():
            server.stop()
    return cases, fast


def table(cases: list[Case]) -> str:
    by_name = {(c.scenario, c.client): c for c in cases}
    lines = ["| scenario | load generator | messages/s (median) | runs | ratio "
             "| generator CPU/msg | server busy |",
             "|---|---|---:|---|---|---:|---:|"]
    for c in cases:
        rate = statistics.median(c.rates)
        ratio = ""
        if c.baseline:
            base = by_name[(c.scenario, c.baseline)].rates
            paired = statistics.median(r / b for r, b in zip(c.rates, base, strict=True))
            ratio = f"**{paired:.2f}x** {c.baseline}"
        runs = ", ".join(f"{r / 1000:.1f}k" for r in c.rates)
        lines.append(f"| {c.scenario} | {c.client} | {rate:,.0f} | {runs} | {ratio} "
                     f"| {statistics.median(c.client_cpu) * 1e6:.0f} µs "
                     f"| {statistics.median(c.server_busy):.0%} |")
    return "\n".join(lines)


def ceiling(cases: list[Case]) -> str:
    """What the cores allow load-generator processes in all, from the CPU per message of
    generator and server measured in the same run, and how near processes=2 came.

    The model: every message costs ``g`` CPU-seconds in the generator and ``s`` in the
    server (its process, and the kernel's loopback TCP it causes); with ``n`` cores and
    nothing else running, at most ``n / (g + s)`` messages/s go round, however the work
    is spread over processes. ``g`` and ``s`` move with the load (a busier server
    handles more messages per wake-up), so the ceiling is computed twice: from the
    processes=1 runs' costs, and from each processes=2 run's own (its share of that
    ceiling is the share of the cores it kept busy).
    """
    processes = [c for c in cases if c.scenario == "processes"]
    if len(processes) != 2:
        return ""
    one, two = processes
    cores = os.cpu_count() or 1

    def server_cost(case: Case) -> list[float]:
        return [s / r for s, r in zip(case.server_busy, case.rates, strict=True)]

    g1, s1 = statistics.median(one.client_cpu), statistics.median(server_cost(one))
    limit = cores / (g1 + s1)
    share1 = statistics.median(r / limit for r in two.rates)
    own = [r * (g + s) / cores for r, g, s in zip(two.rates, two.client_cpu,
                                                   server_cost(two), strict=True)]
    g2, s2 = statistics.median(two.client_cpu), statistics.median(server_cost(two))
    return (f"Ceiling (model: {cores} cores / (generator CPU/msg + server CPU/msg)): from "
            f"the processes=1 runs, {cores} / ({g1 * 1e6:.1f} + {s1 * 1e6:.1f} µs) = "
            f"{limit:,.0f} msg/s, of which processes=2 reached {share1:.0%}; from the "
            f"processes=2 runs' own costs ({g2 * 1e6:.1f} + {s2 * 1e6:.1f} µs, worker "
            f"start-up included), {cores / (g2 + s2):,.0f} msg/s, of which they reached "
            f"{statistics.median(own):.0%} (medians of rounds).")


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
    parser.add_argument("--quick", action="store_true",
                        help="a check that every case runs: 1 s, 1 round, no Dask")
    parser.add_argument("--only", nargs="*", metavar="SCENARIO",
                        help="run only these scenarios (raw, envelope, scenario, ...)")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeats = 1.0, 1
    chosen = [c for c in CASES if (not args.only or c.scenario in args.only)
              and not (args.quick and c.scenario == "dask")]
    where = f"{machine()}, {cpu_model()}"
    print(f"{where}\n{CONNECTIONS} connections, {args.seconds:g} s per run, "
          f"{args.repeats} rounds", flush=True)
    cases, fast = measure(args.seconds, args.repeats, chosen)
    result = (f"{table(cases)}\n\nServer of every row but envelope's: {fast}. "
              f"{ceiling(cases)}")
    print(result)
    if args.write and not (args.quick or args.only):
        write_section(SECTION, (
            f"`python benchmarks/loadgen.py --seconds {args.seconds:g} --repeats "
            f"{args.repeats} --write`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on {where}."
            f"\n\n{result}\n\n{NOTES}"))
        print("written to benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

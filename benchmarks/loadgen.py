"""How many messages/s one nbstream load-generator process sustains, next to a plain loop.

Run on demand (not a unit test): ``python benchmarks/loadgen.py [--seconds 5]
[--repeats 3] [--write]``. Every server runs in its own process; the load comes
from this process (or from ``processes=2`` workers). Each figure is the median of
``--repeats`` interleaved runs (the order reverses every other round); a ratio is the
median of the per-round ratios. "generator CPU/msg" is the CPU time the load generator
(all its processes) spent per message; "server busy" is the share of one core the
server used while the load ran: near 100 % the server, not the generator, was the
limit. The table is printed and, with ``--write``, kept in
benchmarks/RESULTS.md (section "Load generator" only).

Scenarios, 100 connections request/response:

* raw: a plain ``send``/``recv`` loop against ``nbstream.load_test(message_type=None)``,
  both against the cheapest echo server at hand (below), so that the figure is what
  the load generator sustains rather than what a Python server does.
* envelope: nbstream's ``echo`` server (chat -> content + end); a plain loop that
  sends JSON chats and reads until ``end`` against ``nbstream.load_test()``.
* scenario: ``load_test(scenario=...)`` whose flow does one ``user.request`` per
  iteration against the built-in closed model doing the same exchange (raw, C server):
  what scripting costs.
* processes: ``load_test(message_type=None)`` with 1 and 2 worker processes against
  the cheapest echo server at hand (C, libwebsockets, compiled on the fly when ``cc``
  and libwebsockets-dev are installed; else the websockets one), so that the load
  generator is as close to being the limit as it can be.
* dask: the same with ``cluster=`` a Dask ``LocalCluster`` of 1 and of 2 worker
  processes (one thread each), started for each run, with Dask's default worker
  environment and without its ``MALLOC_TRIM_THRESHOLD_`` (when dask.distributed is
  installed: ``pip install 'nbstream[dask]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

import nbstream

sys.path.insert(0, str(Path(__file__).parent))
from results import machine, write_section

CONNECTIONS = 100
SECTION = "Load generator"
NOTES = """\
Each row is the median of interleaved runs (the individual runs follow it; the order
of the rows reverses every other round); a ratio is the median of the per-round
ratios. Single runs swing by a factor of two on this machine. The raw rows run
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

# -- servers, each in its own process ------------------------------------------------------


async def _echo(ws: ServerConnection) -> None:
    async for frame in ws:
        await ws.send(frame)


LWS_ECHO_C = r"""
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#define MAX_FRAME 65536
struct session { size_t len; unsigned char buf[LWS_PRE + MAX_FRAME]; };

static int echo(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                size_t len) {
    struct session *s = user;
    if (reason != LWS_CALLBACK_RECEIVE) return 0;
    if (s->len + len > MAX_FRAME) return -1;
    memcpy(s->buf + LWS_PRE + s->len, in, len);
    s->len += len;
    if (!lws_is_final_fragment(wsi)) return 0;
    int n = lws_write(wsi, s->buf + LWS_PRE, s->len,
                      lws_frame_is_binary(wsi) ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    s->len = 0;
    return n < 0 ? -1 : 0;
}

static struct lws_protocols protocols[] = {
    {"echo", echo, sizeof(struct session), MAX_FRAME, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int main(int argc, char **argv) {
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = atoi(argv[1]);
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context *context = lws_create_context(&info);
    if (!context) return 1;
    while (lws_service(context, 0) >= 0) {}
    return 0;
}
"""
"""An echo server in C on libwebsockets: the cheapest server at hand, so that the load
generator rather than the server is the limit (``apt-get install libwebsockets-dev``)."""


def build_c_echo() -> Path | None:
    """Compile :data:`LWS_ECHO_C` into a temporary directory; None without cc/libwebsockets."""
    try:
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libwebsockets"],
                               capture_output=True, text=True, check=True).stdout.split()
        binary = Path(tempfile.mkdtemp(prefix="nbstream-bench-")) / "lws_echo"
        source = binary.with_suffix(".c")
        source.write_text(LWS_ECHO_C)
        subprocess.run(["cc", "-O2", "-o", str(binary), str(source), *flags],
                       capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return binary


async def _serve(kind: str, ports: Any) -> None:
    if kind == "raw":
        server = await serve(_echo, "127.0.0.1", 0, compression=None, max_queue=None)
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    else:
        url = (await nbstream.aserve("echo", max_connections=None)).url
    ports.put(url)
    await asyncio.Event().wait()


def _server_main(kind: str, ports: Any) -> None:
    asyncio.run(_serve(kind, ports))


@dataclass
class ServerProcess:
    """A server in its own process: its URL and CPU time so far."""

    process: Any
    url: str
    pid: int

    @classmethod
    def start(cls, kind: str) -> ServerProcess:
        """``raw`` (websockets), ``nbstream`` (its echo handler), in a spawned process."""
        context = multiprocessing.get_context("spawn")
        ports = context.Queue()
        process = context.Process(target=_server_main, args=(kind, ports), daemon=True)
        process.start()
        assert process.pid is not None
        return cls(process, ports.get(timeout=60), process.pid)

    @classmethod
    def start_binary(cls, binary: Path) -> ServerProcess:
        """A compiled server taking its port as its only argument."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        process = subprocess.Popen([str(binary), str(port)])
        url = f"ws://127.0.0.1:{port}/"
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    process.kill()
                    raise
                time.sleep(0.05)
        return cls(process, url, process.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server process (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        if isinstance(self.process, subprocess.Popen):
            self.process.wait(5)
        else:
            self.process.join(5)


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


async def plain_raw(url: str, seconds: float) -> tuple[int, float]:
    """A plain websockets loop: send a text frame, wait for the echo, repeat."""
    return await plain_loop(url, seconds, raw_exchange)


async def plain_envelope(url: str, seconds: float) -> tuple[int, float]:
    """A plain loop speaking the envelope: send a JSON chat, read until its ``end``."""
    return await plain_loop(url, seconds, envelope_exchange)


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


def nbstream_scenario(url: str, seconds: float) -> tuple[int, float]:
    return nbstream_load(url, seconds, protocol="raw", scenario=one_request)


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
    Case("raw", "plain websockets loop", "fast", _sync(plain_raw)),
    Case("raw", "nbstream.load_test", "fast",
         lambda url, s: nbstream_load(url, s, message_type=None), "plain websockets loop"),
    Case("envelope", "plain websockets loop", "nbstream", _sync(plain_envelope)),
    Case("envelope", "nbstream.load_test", "nbstream", lambda url, s: nbstream_load(url, s),
         "plain websockets loop"),
    Case("scenario", "load_test closed model", "fast",
         lambda url, s: nbstream_load(url, s, protocol="raw")),
    Case("scenario", "scenario, 1 request/iteration", "fast", nbstream_scenario,
         "load_test closed model"),
    Case("processes", "load_test processes=1", "fast",
         lambda url, s: nbstream_load(url, s, message_type=None)),
    Case("processes", "load_test processes=2", "fast",
         lambda url, s: nbstream_load(url, s, message_type=None, processes=2),
         "load_test processes=1"),
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


def measure(seconds: float, repeats: int, cases: list[Case]) -> tuple[list[Case], str]:
    """Run ``cases`` ``repeats`` times, interleaved; returns them and the fast server used."""
    servers = {kind: ServerProcess.start(kind) for kind in ("raw", "nbstream")}
    binary = build_c_echo()
    servers["fast"] = ServerProcess.start_binary(binary) if binary else servers["raw"]
    fast = "libwebsockets (C) echo" if binary else "websockets echo (no cc/libwebsockets)"
    try:
        nbstream_load(servers["raw"].url, 0.2, message_type=None)  # imports pandas etc. once
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
    """What the machine's cores allow several load-generator processes, from CPU costs."""
    processes = [c for c in cases if c.scenario == "processes"]
    if len(processes) != 2:
        return ""
    one, two = processes
    generator = statistics.median(one.client_cpu)
    server = statistics.median(s / r for s, r in zip(one.server_busy, one.rates, strict=True))
    cores = os.cpu_count() or 1
    limit = cores / (generator + server)
    return (f"One load-generator process spends {generator * 1e6:.0f} µs of CPU per message "
            f"(at most {1 / generator:,.0f} msg/s on a core of its own), the C server "
            f"{server * 1e6:.0f} µs (mostly loopback TCP in the kernel). {cores} cores then "
            f"allow about {limit:,.0f} msg/s in all, at most {limit * generator:.2f}x one "
            f"process however many processes run; processes=2 reached "
            f"{statistics.median(two.rates) / limit:.0%} of that. The 1.7x target needs the "
            f"server on other cores.")


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
    result = (f"{table(cases)}\n\nServer of the raw, processes and dask rows: {fast}. "
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

"""The race: nbstream's load_test, Locust, Artillery and a plain loop, taking turns.

Run on demand: ``python benchmarks/peers.py [--users 50] [--short 3] [--long 15]
[--quick] [--write]``. Every tool does request/response against the same echo server
(benchmarks/servers.py: C on libwebsockets, else picows), each virtual user waiting
for the reply before its next send:

* nbstream ``load_test(protocol="raw")`` on each transport (a row per message, HDR
  percentiles corrected for coordinated omission);
* a plain websockets loop (no measurement at all: the floor of a Python client), on
  asyncio's loop and on uvloop's (nbstream's rows run as a script's load test does, on
  nbstream's own loop: uvloop's when installed);
* Locust 2.x with a minimal ``User`` on websocket-client that sends, receives and
  fires ``events.request`` (as Locust's docs show for custom clients);
* Artillery 2.x's ``ws`` engine, ``send`` with ``payload`` and ``match`` on the reply;
  also its fire-and-forget ``send`` (no match), a rate that measures no latency.

CPU per round trip is the steady state: each tool runs twice, ``--short`` and
``--long`` seconds, and the CPU difference is divided by the round-trip difference,
so that start-up (Artillery's is seconds of CPU) does not count. Each tool runs in
processes of its own and its CPU is what they and their children used.

Locust and Artillery are installed in a throwaway environment (``--env``, by default
``~/.cache/nbstream-peers``; ``--fresh`` rebuilds it): a venv for Locust and
websocket-client, an npm prefix for Artillery (``PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1``:
it pulls a browser otherwise). They are never dependencies of nbstream.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import venv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from results import machine, write_section
from servers import fastest_echo

SECTION = "The race: nbstream, Locust, Artillery"
PAYLOAD = "Test message"


@dataclass
class Run:
    """One run of one tool: round trips done and CPU seconds its processes used."""

    round_trips: int
    cpu: float
    seconds: float
    system: float = 0.0
    """Of ``cpu``, the seconds spent in the kernel (system time: the loopback TCP stack)."""


@dataclass
class Tool:
    name: str
    latency: str
    """What latency the tool can report, and how."""
    run: Callable[[str, int, float], Run]


def _children_cpu() -> tuple[float, float]:
    """User and system CPU seconds of every finished child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def _timed(command: list[str], env: dict[str, str] | None = None,
           cwd: str | None = None) -> tuple[str, float, float]:
    """Run ``command`` to the end; its stdout, the CPU it (and its children) used, and
    of that the system time."""
    before = _children_cpu()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd,
                          check=False)
    user, system = (after - b for after, b in zip(_children_cpu(), before, strict=True))
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): "
                           f"{done.stderr[-2000:] or done.stdout[-2000:]}")
    return done.stdout, user + system, system


# -- nbstream and the plain loop: a Python process each --------------------------------------

NBSTREAM = """
import nbstream
result = nbstream.load_test({url!r}, connections={users}, duration={seconds},
                            protocol="raw", payload={payload!r}, transport={transport!r},
                            progress=False)
summary = result.summary()["value"]
assert summary["errors"] == 0, result.messages["error"].value_counts()
print(int(summary["completed"]))
"""

PLAIN = """
import asyncio, time
from websockets.asyncio.client import connect

async def main():
    sockets = [await connect({url!r}, compression=None, ping_interval=None)
               for _ in range({users})]
    done = 0
    stop = time.perf_counter() + {seconds}
    async def user(ws):
        nonlocal done
        while time.perf_counter() < stop:
            await ws.send({payload!r})
            await ws.recv()
            done += 1
    await asyncio.gather(*(user(ws) for ws in sockets))
    await asyncio.gather(*(ws.close() for ws in sockets))
    print(done)

__import__({loop!r}).run(main())
"""


def python_tool(template: str, **fields: str) -> Callable[[str, int, float], Run]:
    def run(url: str, users: int, seconds: float) -> Run:
        code = template.format(url=url, users=users, seconds=seconds, payload=PAYLOAD, **fields)
        out, cpu, system = _timed([sys.executable, "-c", code])
        return Run(int(out.split()[-1]), cpu, seconds, system)
    return run


# -- Locust ----------------------------------------------------------------------------------

LOCUSTFILE = """
import time
import websocket
from locust import User, constant, events, task

class EchoUser(User):
    wait_time = constant(0)

    def on_start(self):
        self.ws = websocket.create_connection(self.host)

    def on_stop(self):
        self.ws.close()

    @task
    def echo(self):
        started = time.perf_counter()
        exception = None
        try:
            self.ws.send({payload!r})
            reply = self.ws.recv()
        except Exception as exc:
            exception, reply = exc, ""
        events.request.fire(request_type="ws", name="echo", context={{}},
                            response_time=(time.perf_counter() - started) * 1000,
                            response_length=len(reply), exception=exception)
"""


def locust_tool(env: Path) -> Callable[[str, int, float], Run]:
    def run(url: str, users: int, seconds: float) -> Run:
        with tempfile.TemporaryDirectory() as work:
            (Path(work) / "locustfile.py").write_text(LOCUSTFILE.format(payload=PAYLOAD))
            _, cpu, system = _timed([str(env / "venv" / "bin" / "locust"), "-f", "locustfile.py",
                                    "--headless", "-u", str(users), "-r", str(users),
                                    "-t", f"{seconds:g}s", "--host", url, "--csv", "out",
                                    "--only-summary", "--exit-code-on-error", "0"], cwd=work)
            with (Path(work) / "out_stats.csv").open() as stats:
                rows = {row["Name"]: row for row in csv.DictReader(stats)}
            return Run(int(rows["Aggregated"]["Request Count"]), cpu, seconds, system)
    return run


# -- Artillery -------------------------------------------------------------------------------


def artillery_tool(env: Path, match: bool) -> Callable[[str, int, float], Run]:
    def run(url: str, users: int, seconds: float) -> Run:
        send: object = ({"payload": PAYLOAD, "match": {"regexp": PAYLOAD}} if match
                        else PAYLOAD)
        script = {
            "config": {"target": url, "phases": [{"duration": 1, "arrivalCount": users}]},
            "scenarios": [{"engine": "ws", "flow": [
                {"loop": [{"send": send}], "whileTrue": "running"}]}],
        }
        with tempfile.TemporaryDirectory() as work:
            processor = Path(work) / "processor.js"
            processor.write_text(textwrap.dedent(f"""
                const stop = Date.now() + {seconds * 1000:.0f};
                module.exports = {{ running: (context, next) => next(Date.now() < stop) }};
            """))
            script["config"]["processor"] = str(processor)  # type: ignore[index]
            (Path(work) / "script.json").write_text(json.dumps(script))
            environ = {**os.environ, "ARTILLERY_DISABLE_TELEMETRY": "true",
                       "ARTILLERY_WORKERS": "1"}
            _, cpu, system = _timed([str(env / "npm" / "node_modules" / ".bin" / "artillery"),
                                     "run", "--output", "report.json", "script.json"],
                                    env=environ, cwd=work)
            report = json.loads((Path(work) / "report.json").read_text())
        counters = report["aggregate"]["counters"]
        return Run(int(counters.get("websocket.messages_sent", 0)), cpu, seconds, system)
    return run


# -- the environment ---------------------------------------------------------------------------


def prepare(env: Path, fresh: bool) -> None:
    """Install Locust (+ websocket-client) in a venv and Artillery with npm, under ``env``."""
    if fresh and env.exists():
        shutil.rmtree(env)
    if not (env / "venv" / "bin" / "locust").exists():
        print(f"installing Locust and websocket-client in {env / 'venv'}", flush=True)
        venv.create(env / "venv", with_pip=True)
        subprocess.run([str(env / "venv" / "bin" / "pip"), "install", "-q",
                        "locust>=2.20,<3", "websocket-client"], check=True)
    if not (env / "npm" / "node_modules" / ".bin" / "artillery").exists():
        print(f"installing Artillery in {env / 'npm'} (a few minutes)", flush=True)
        (env / "npm").mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(env / "npm"), "--no-audit",
                        "--no-fund", "--loglevel=error", "artillery@2"],
                       env={**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}, check=True)


def tools(env: Path) -> list[Tool]:
    corrected = "every message: a row with its latency; HDR percentiles, corrected for " \
                "coordinated omission (open model)"
    return [
        Tool("nbstream load_test, picows", corrected, python_tool(NBSTREAM, transport="picows")),
        Tool("nbstream load_test, websockets", corrected,
             python_tool(NBSTREAM, transport="websockets")),
        Tool("plain websockets loop", "none", python_tool(PLAIN, loop="asyncio")),
        Tool("plain websockets loop on uvloop", "none", python_tool(PLAIN, loop="uvloop")),
        Tool("Locust + websocket-client", "every request through events.request: "
             "percentiles from its own buckets, per name; not corrected",
             locust_tool(env)),
        Tool("Artillery ws, send + match", "none per message for ws: counts and rates "
             "(the match only checks the reply)", artillery_tool(env, match=True)),
        Tool("Artillery ws, send only", "none (fire and forget: no reply awaited)",
             artillery_tool(env, match=False)),
    ]


def race(url: str, users: int, short: float, long: float, rounds: int,
         chosen: list[Tool]) -> str:
    results: dict[str, list[tuple[Run, Run]]] = {t.name: [] for t in chosen}
    for round_ in range(rounds):
        for tool in chosen if round_ % 2 == 0 else chosen[::-1]:
            pair = (tool.run(url, users, short), tool.run(url, users, long))
            results[tool.name].append(pair)
            a, b = pair
            print(f"  round {round_ + 1}: {tool.name:32} {a.round_trips:>9,} / "
                  f"{b.round_trips:>9,} round trips, {a.cpu:6.2f} / {b.cpu:6.2f} CPU s "
                  f"({a.system:.2f} / {b.system:.2f} in the kernel)",
                  flush=True)
    lines = ["| tool | round trips/s | µs of CPU per round trip (steady state) | "
             "of which in the kernel | round trips per CPU-second | latency it reports |",
             "|---|---:|---:|---:|---:|---|"]
    for tool in chosen:
        pairs = results[tool.name]
        rate = statistics.median(b.round_trips / b.seconds for _, b in pairs)
        cost = statistics.median((b.cpu - a.cpu) / max(1, b.round_trips - a.round_trips)
                                 for a, b in pairs)
        kernel = statistics.median((b.system - a.system) / max(1, b.round_trips - a.round_trips)
                                   for a, b in pairs)
        lines.append(f"| {tool.name} | {rate:,.0f} | {cost * 1e6:.1f} | {kernel * 1e6:.1f} | "
                     f"{1 / cost:,.0f} | {tool.latency} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--short", type=float, default=3.0, help="seconds of the short runs")
    parser.add_argument("--long", type=float, default=15.0, help="seconds of the long runs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--env", type=Path, default=Path.home() / ".cache" / "nbstream-peers")
    parser.add_argument("--fresh", action="store_true", help="reinstall the peers")
    parser.add_argument("--only", nargs="*", metavar="WORD",
                        help="run only the tools whose name has one of these words")
    parser.add_argument("--quick", action="store_true", help="2 s and 5 s, one round")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.short, args.long, args.rounds = 2.0, 5.0, 1
    chosen = [t for t in tools(args.env)
              if not args.only or any(w.lower() in t.name.lower() for w in args.only)]
    if any("Locust" in t.name or "Artillery" in t.name for t in chosen):
        prepare(args.env, args.fresh)
    server, described = fastest_echo()
    try:
        table = race(server.url, args.users, args.short, args.long, args.rounds, chosen)
    finally:
        server.stop()
    body = (f"{args.users} users, request/response against the {described}; runs of "
            f"{args.short:g} s and {args.long:g} s, {args.rounds} rounds taking turns "
            f"(medians).\n\n{table}\n\nCPU per round trip = (CPU of the long run - CPU of "
            "the short run) / (round trips of the long run - of the short run): start-up "
            "cancels out, work that grows with the messages stays (nbstream's result "
            "building included); the kernel's share (system time) is mostly the loopback "
            "TCP stack, which every tool pays. Round trips/s are the long runs'. "
            "Artillery's send-only row measures how fast it writes, not a round trip.")
    print(body)
    if args.write and not (args.quick or args.only):
        write_section(SECTION, (
            f"`python benchmarks/peers.py --users {args.users} --short {args.short:g} "
            f"--long {args.long:g} --rounds {args.rounds} --write`, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on {machine()}.\n\n{body}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""100 concurrent Strands agents on the scripted model: per-turn figures and where the time goes.

(Not named strands.py: run as a script, that name would hide the Strands SDK itself.)

Run on demand: ``python benchmarks/agents.py [--agents 100] [--iterations 3] [--write]``.
One process, one asyncio loop, as in a notebook kernel: ``serve_agent`` runs a real
``BidiAgent`` per session on :class:`~nbstream.strands.ScriptedBidiModel`, and
``load_test`` plays :func:`nbstream.strands.conversation` with ``--agents`` users at
once (a tool turn, an audio turn and a barge-in per iteration).

* Per-turn figures (``LoadResult.steps``): time to first transcript and audio delta,
  response time, barge-in latency and tool round trip, p50 and p99. With the model's
  pace set to 0 they are pure overhead (queueing behind the other agents on one core);
  with ``--pace`` they are the pace plus that overhead.
* Where the time goes: the whole run under cProfile, each function's own time put in
  a bucket by the package it lives in (the Strands SDK's agent loop, the scripted
  model, nbstream's server, its Strands bridge, the wire and JSON, the load generator,
  websockets, asyncio). Shares of the profiled CPU time, which a busy machine changes
  far less than wall-clock figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

from strands.bidi import BidiAgent

import nbstream
from nbstream.strands import ScriptedBidiModel, aconnect, aserve_agent, calculator, conversation

sys.path.insert(0, str(Path(__file__).parent))
from results import machine, write_section

SCRIPT: list[Any] = [
    {"when": r"what is (?P<expr>[-+*/ 0-9.()]+)", "tool": "calculator",
     "input": {"expression": "{expr}"}, "say": "{expr} is {result}."},
    {"when": "of audio", "say": "I heard {seconds:.1f} seconds of audio."},
    {"when": "story", "say": "Once upon a time there was a very long story that went on "
                             "and on and on for ever and ever without an end in sight."},
    "Hello! Ask me a sum.",
]
TURNS: list[Any] = [
    {"say": "what is 6*7", "expect": "42", "name": "tool"},
    {"audio": 0.5, "name": "audio"},
    {"say": "tell me a story", "interrupt": "stop!", "after": 3, "name": "barge"},
]
BUCKETS = [
    ("scripted model", ("nbstream/strands/model", "nbstream/strands/reply",
                        "nbstream/strands/inbox", "nbstream/strands/script")),
    ("nbstream Strands bridge (wire mapping, streams, serving, client)",
     ("nbstream/strands/",)),
    ("Strands SDK (agent loop, events, tools)", ("/strands/",)),
    ("load generator and scenario", ("nbstream/loadtest/",)),
    ("nbstream server (sessions, outbox, events)", ("nbstream/server/", "nbstream/events")),
    ("nbstream wire and JSON (envelopes, msgspec)", ("nbstream/wire/", "nbstream/protocol/",
                                                     "msgspec")),
    ("websockets", ("/websockets/",)),
    ("asyncio event loop", ("asyncio/", "selectors", "{method 'poll'", "{built-in method select")),
]


def agent(pace: float) -> BidiAgent:
    return BidiAgent(model=ScriptedBidiModel(SCRIPT, pace=pace, audio_gap=0.05),
                     tools=[calculator])


async def envelopes_per_iteration(server: nbstream.Server) -> int:
    """Envelopes the server sends for one iteration of TURNS (counted once, unloaded)."""
    counted = 0

    def count(event: nbstream.FlowEvent) -> None:
        nonlocal counted
        counted += event.kind == "out" and event.message is not None

    unsubscribe = server.events.subscribe(count)
    client = await aconnect(server.url, timeout=30)
    await client.aturn("what is 6*7")
    await client.asend_audio(bytes(16_000))
    await client.aresponse()
    await client.asay("tell me a story")
    for _ in range(8):
        await client.anext_event()
    await client.ainterrupt("stop!")
    await client.aresponse()
    await client.aclose()
    unsubscribe()
    return counted


def bucket_of(filename: str, name: str) -> str:
    where = f"{filename} {name}"
    for label, needles in BUCKETS:
        if any(needle in where for needle in needles):
            return label
    return "other (Python, stdlib, pandas)"


WAITING = ("<method 'poll' of 'select.epoll' objects>",
           "<method 'acquire' of '_thread.lock' objects>")
"""Where the loop (or a thread) waits: not CPU time, left out of the shares."""


def breakdown(profile: cProfile.Profile) -> dict[str, float]:
    """Each bucket's share of the profiled self time; a built-in's time counts for the
    package of the function that called it."""
    stats = pstats.Stats(profile)
    totals: dict[str, float] = {}

    def add(filename: str, name: str, seconds: float) -> None:
        label = bucket_of(filename, name)
        totals[label] = totals.get(label, 0.0) + seconds

    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        if name in WAITING:
            continue
        callers = row[4]
        if filename == "~" and callers:
            for (caller_file, _, caller_name), caller_row in callers.items():
                add(caller_file, caller_name, caller_row[2])
        else:
            add(filename, name, row[2])
    whole = sum(totals.values())
    shares = {label: seconds / whole for label, seconds in
              sorted(totals.items(), key=lambda item: -item[1])}
    fan_out = sum(row[3] for (filename, _, name), row in stats.stats.items()  # type: ignore[attr-defined]
                  if filename.endswith("_task_group.py") and name in ("create_task", "__aexit__"))
    shares[FAN_OUT] = fan_out / whole
    return shares


FAN_OUT = "fan-out"
"""The share (cumulative) of BidiAgent.run's per-event task group: a task per output
stream for every event, then a wait for it."""


async def measure(agents: int, iterations: int, pace: float, profile: bool) -> dict[str, Any]:
    server = await aserve_agent(lambda: agent(pace), max_connections_per_user=None)
    sent = await envelopes_per_iteration(server)
    flow = conversation(turns=TURNS)
    await nbstream.aload_test(server, scenario=flow, connections=2, iterations=1,
                              progress=False)  # warm up: imports, caches
    profiler = cProfile.Profile() if profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = await nbstream.aload_test(server, scenario=flow, connections=agents,
                                       iterations=iterations, progress=False, timeout=60)
    if profiler is not None:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await server.astop()
    return {"result": result, "cpu": cpu, "wall": wall, "sent": sent,
            "breakdown": breakdown(profiler) if profiler is not None else {}}


def report(runs: dict[float, dict[str, Any]], profiled: dict[str, Any], agents: int,
           iterations: int) -> str:
    lines = [f"{agents} agents at once, {iterations} iterations each (a tool turn, 0.5 s of "
             f"audio, a story cut after 3 words); one process and loop, on {machine()}. "
             f"Shared machine (load average {os.getloadavg()[0]:.1f} at the end): read "
             "ratios and shares, not absolute times.", ""]
    lines += ["| model pace | figure | p50 | p99 | errors |", "|---|---|---:|---:|---:|"]
    for pace, run in runs.items():
        steps = run["result"].steps
        for name in steps.index:
            row = steps.loc[name]
            lines.append(f"| {pace} s | {name} | {row['p50'] * 1000:.0f} ms | "
                         f"{row['p99'] * 1000:.0f} ms | {int(row['errors'])} |")
    lines.append("")
    for pace, run in runs.items():
        envelopes = run["sent"] * agents * iterations
        lines.append(f"- pace {pace} s: {envelopes:,} envelopes in {run['wall']:.1f} s wall, "
                     f"{run['cpu']:.1f} s CPU ({run['cpu'] / run['wall']:.0%} of one core); "
                     f"{run['cpu'] / envelopes * 1e6:.0f} µs of CPU per envelope, "
                     "load generator included.")
    shares = dict(profiled["breakdown"])
    fan_out = shares.pop(FAN_OUT, 0.0)
    ours = sum(share for label, share in shares.items() if label.startswith("nbstream"))
    wire = sum(share for label, share in shares.items() if label.startswith("nbstream wire"))
    lines += ["", "Where the CPU time goes (a third run at pace 0 under cProfile; own time "
              "by package, built-ins counted for their caller, waiting left out):", "",
              "| part | share |", "|---|---:|"]
    lines += [f"| {label} | {share:.0%} |" for label, share in shares.items()]
    lines += ["", "Reading it: every agent, the server and the load generator share one loop "
              "on one core, so at pace 0 a turn's latency is mostly waiting for the other "
              "agents' work. The asyncio share is scheduling: the Strands agent loop hands "
              "each event through two queues and, in `BidiAgent.run`, creates a task per "
              "output stream for every event and waits for it "
              f"({fan_out:.0%} of the CPU time, cumulative, is that fan-out alone). "
              f"nbstream's own parts (server, wire and JSON, the Strands bridge) take {ours:.0%}, "
              f"of which the wire and JSON encoding {wire:.0%}."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--pace", type=float, default=0.02,
                        help="seconds between spoken words in the paced run")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    runs = {0.0: asyncio.run(measure(args.agents, args.iterations, 0.0, profile=False)),
            args.pace: asyncio.run(measure(args.agents, args.iterations, args.pace, False))}
    profiled = asyncio.run(measure(args.agents, args.iterations, 0.0, profile=True))
    text = report(runs, profiled, args.agents, args.iterations)
    print(text)
    if args.write:
        write_section("Strands agents (benchmarks/agents.py)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

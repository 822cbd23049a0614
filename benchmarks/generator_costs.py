"""What the load generator's figures cost and how honest they stay at speed.

Run on demand: ``python benchmarks/generator_costs.py [--quick] [--write]``.

* open model: ``load_test(rate=20_000)`` (picows, raw, against the cheapest echo
  server at hand) for ``--seconds``: the rate achieved against the rate asked (the
  target: within 2 %), and the send lag (how late messages left their timetable).
* recorder: CPU per message of recording alone (a record, its outcome, the live tick)
  and of turning the records into a LoadResult (columns, histograms, DataFrames),
  measured without sockets over a million messages.
* imports: what a worker process pays once for the load-test path (nbstream's load
  tester, pandas, numpy, hdrhistogram, picows): seconds of CPU in a fresh interpreter.
  Worker start-up is not in any messages/s figure (measured from the first send).

With ``--write`` the figures go to benchmarks/RESULTS.md (section "Load generator
costs").
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import nbstream

sys.path.insert(0, str(Path(__file__).parent))
from results import machine, write_section
from servers import fastest_echo

SECTION = "Load generator costs"
RATE = 20_000.0


def open_model(seconds: float, repeats: int) -> str:
    """The open model at RATE msg/s: achieved rate and send lag, per run."""
    server, described = fastest_echo()
    lines = [f"Open model, {RATE:,.0f} msg/s asked for {seconds:g} s, 200 connections, "
             f"picows, raw, against the {described}:", "",
             "| run | sent | achieved msg/s | of the rate asked | send lag p50 | send lag p99 "
             "| latency_corrected p99 | errors |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    try:
        for run in range(repeats):
            result = nbstream.load_test(server.url, connections=200, rate=RATE,
                                        duration=seconds, protocol="raw",
                                        transport="picows", progress=False)
            m = result.messages
            sent = m["sent_at"].dropna()
            achieved = (len(sent) - 1) / (sent.max() - sent.min())
            summary = result.summary()["value"]
            lines.append(
                f"| {run + 1} | {len(sent):,} | {achieved:,.0f} | {achieved / RATE:.1%} "
                f"| {summary['send_lag_p50'] * 1e3:.2f} ms "
                f"| {summary['send_lag_p99'] * 1e3:.2f} ms "
                f"| {summary['latency_corrected_p99'] * 1e3:.2f} ms "
                f"| {int(summary['errors'])} |")
    finally:
        server.stop()
    return "\n".join(lines)


RECORDER_SNIPPET = """
import time
import pandas  # imported once per process (measured on its own): not a cost per message
from nbstream.loadtest.recorder import Recorder
from nbstream.loadtest.result import LoadResult
n = {n}
recorder = Recorder()
clock = recorder.clock
start = time.process_time()
for i in range(n):
    now = clock()
    record = recorder.message(i % 100, i // 100, now, now, 20)
    record.first_ns, record.replies, record.bytes_in = now + 1000, 1, 20
    recorder.finish(record, now + 2000)
    if i % 10_000 == 0:
        recorder.tick()
recorded = time.process_time()
result = LoadResult.from_parts([recorder.to_part(0)], {{"model": "closed"}})
result.summary()
built = time.process_time()
print((recorded - start) / n * 1e6, (built - recorded) / n * 1e6)
"""


def recorder_cost(messages: int, repeats: int) -> str:
    """µs of CPU per message to record it, and to build the LoadResult afterwards."""
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", RECORDER_SNIPPET.format(n=messages)],
                             capture_output=True, text=True, check=True).stdout
        runs.append(tuple(float(x) for x in out.split()))
    record = statistics.median(r[0] for r in runs)
    build = statistics.median(r[1] for r in runs)
    return (f"Recorder, {messages:,} messages without sockets (median of {repeats} runs): "
            f"{record:.2f} µs of CPU per message to record it (a record, its outcome, a live "
            f"tick every 10,000), {build:.2f} µs per message to build the LoadResult and its "
            "summary once the load is over (columns, HDR histograms, DataFrames; runs: "
            f"{', '.join(f'{r[1]:.2f}' for r in runs)}). The build touches hundreds of MB "
            "of fresh memory, with ordinary pages: numpy's huge-page advice is off while it "
            "runs (nbstream/loadtest/hugepages.py); with it, the same build took 0.9 to 2.3 "
            "µs per message here (10 of 11 runs above 1.6), most of it in the kernel.")


IMPORTS = {
    "python alone": "pass",
    "numpy": "import numpy",
    "pandas": "import pandas",
    "hdrhistogram": "import hdrh.histogram",
    "picows": "import picows",
    "a worker's load-test path": "import nbstream.loadtest.workers, "
                                 "nbstream.loadtest.picows_transport",
}


def import_cost(repeats: int) -> str:
    """CPU seconds a fresh interpreter spends on each import (median of runs)."""
    lines = ["| import | CPU in a fresh interpreter |", "|---|---:|"]
    for name, code in IMPORTS.items():
        runs = []
        for _ in range(repeats):
            snippet = (f"import time; t = time.process_time(); {code}; "
                       "print(time.process_time() - t)")
            out = subprocess.run([sys.executable, "-c", snippet], capture_output=True,
                                 text=True, check=True).stdout
            runs.append(float(out))
        lines.append(f"| {name} | {statistics.median(runs) * 1e3:.0f} ms |")
    return ("Imports a worker process pays once (every worker process and every Dask "
            "worker imports the load-test path before the shared start; it is not in "
            "messages/s):\n\n" + "\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="open-model run length")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 s, one run each")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeats = 2.0, 1
    started = time.perf_counter()
    parts = [open_model(args.seconds, args.repeats),
             recorder_cost(200_000 if args.quick else 1_000_000, args.repeats),
             import_cost(args.repeats)]
    body = "\n\n".join(parts)
    print(body)
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.write and not args.quick:
        write_section(SECTION, (
            f"`python benchmarks/generator_costs.py --seconds {args.seconds:g} --repeats "
            f"{args.repeats} --write`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on "
            f"{machine()}.\n\n{body}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

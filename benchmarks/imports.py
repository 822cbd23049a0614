"""What importing nbstream costs: ``import nbstream``, the server and client paths, the
load-test path a worker process pays once, and ``nbstream --help``.

Each figure is the median over ``--rounds`` fresh interpreters of the cumulative time
``python -X importtime`` reports for the top-level import (interpreter start-up not
included); ``--help`` is timed whole, start-up included, against ``python -c pass``.

    python benchmarks/imports.py [--rounds 15] [--write]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from results import machine, write_section

CASES = {
    "import nbstream": "import nbstream",
    "nbstream.serve (server path)": "import nbstream; nbstream.serve",
    "nbstream.connect (client path)": "import nbstream; nbstream.connect",
    "nbstream.load_test (load-test path, once per worker)": "import nbstream; nbstream.load_test",
    "nbstream.FlowView (widgets)": "import nbstream; nbstream.FlowView",
}


def import_seconds(code: str) -> float:
    """Cumulative import time of everything ``code`` imports, in seconds."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                            capture_output=True, text=True, check=True)
    total = 0
    for line in result.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2].startswith("  "):
            total += int(parts[1])  # top-level imports only: each includes its own imports
    return total / 1e6


def command_seconds(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, capture_output=True, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    rows = []
    for name, code in CASES.items():
        rows.append((name, statistics.median(import_seconds(code) for _ in range(args.rounds))))
    bare = statistics.median(command_seconds([sys.executable, "-c", "pass"])
                             for _ in range(args.rounds))
    help_ = statistics.median(command_seconds([sys.executable, "-m", "nbstream", "--help"])
                              for _ in range(args.rounds))
    lines = ["| what | median |", "|---|---:|"]
    lines += [f"| {name} | {seconds * 1e3:.0f} ms |" for name, seconds in rows]
    lines.append(f"| `nbstream --help`, whole command (bare interpreter: "
                 f"{bare * 1e3:.0f} ms) | {help_ * 1e3:.0f} ms |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section("Import time (benchmarks/imports.py)", (
            f"{machine()}; medians of {args.rounds} fresh interpreters, "
            "`python -X importtime`, top-level imports summed (start-up excluded). "
            "Target: `import nbstream` <= 150 ms.\n\n" + table))


if __name__ == "__main__":
    main()

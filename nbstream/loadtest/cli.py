"""``nbstream load URL``: run a load test from a terminal and print its summary.

Example: ``nbstream load ws://127.0.0.1:8000/ws --connections 200 --rate 2000
--duration 10 --out results.parquet``; then ``nbstream.LoadResult.read_parquet``.
"""

from __future__ import annotations

import argparse
import sys


def configure_load(parser: argparse.ArgumentParser) -> None:
    """Add the ``load`` sub-command's arguments to ``parser``."""
    parser.description = __doc__
    parser.add_argument("url", help="ws:// or wss:// URL of the server to test")
    parser.add_argument("--connections", type=int, default=100,
                        help="concurrent connections (default 100)")
    parser.add_argument("--messages", type=int, default=10,
                        help="messages per connection in the closed model (default 10)")
    parser.add_argument("--rate", type=float,
                        help="messages/s in total: open model, latency from the due time")
    parser.add_argument("--duration", type=float, help="seconds to send for")
    parser.add_argument("--ramp-up", type=float, default=0.0,
                        help="seconds over which connections open (default 0)")
    parser.add_argument("--payload", default="Test message {i}",
                        help="message text; {i} and {connection} are filled in")
    parser.add_argument("--message-type", default="chat",
                        help="envelope type to send (default chat)")
    parser.add_argument("--raw", action="store_true",
                        help="send raw text frames and time the first frame back (any "
                             "echo server)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds for a handshake or an answer (default 30)")
    parser.add_argument("--processes", type=int,
                        help="worker processes to spread connections over (default 1); "
                             "with --cluster, how many of its workers (default all)")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="run on the workers of this Dask scheduler (tcp://HOST:8786); "
                             "needs pip install 'nbstream[dask]'")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--out", metavar="PATH.parquet",
                        help="also write every row to this parquet file")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from nbstream.loadtest.launch import load_test

    try:
        result = load_test(
            args.url, connections=args.connections, messages=args.messages, rate=args.rate,
            duration=args.duration, ramp_up=args.ramp_up, payload=args.payload,
            message_type=None if args.raw else args.message_type, timeout=args.timeout,
            processes=args.processes, cluster=args.cluster, progress=not args.no_progress,
        )
    except (ValueError, ImportError) as exc:  # bad arguments; --cluster without Dask
        print(f"nbstream load: {exc}", file=sys.stderr)
        return 2
    print(result)
    if args.out:
        result.to_parquet(args.out)
        print(f"rows written to {args.out}; read them with "
              f"nbstream.LoadResult.read_parquet({args.out!r})")
    return 0 if result.messages["error"].isna().any() else 1

"""nbstream load URL: run a load test from a terminal, print its summary, judge it.

Example: nbstream load ws://127.0.0.1:8000/ws --connections 200 --rate 2000
--duration 10 --max-p99 0.05 --out results.parquet; then
nbstream.LoadResult.read_parquet("results.parquet"). Any WebSocket server:
--protocol raw|text|json; a scripted user flow: --scenario flows:user_flow (an
async function in flows.py, found from the current directory).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbstream.cliargs import UsageError, fraction, positive_float, read_secret
from nbstream.loadtest.thresholds import Thresholds

if TYPE_CHECKING:
    from nbstream.loadtest.result import LoadResult

PASSED, FAILED, USAGE, NOT_WRITTEN = 0, 1, 2, 3
"""Exit statuses of ``nbstream load`` (see EXIT_STATUSES)."""

EXIT_STATUSES = """\
exit status:
  0  the run met its thresholds: by default, no connection and no message failed
  1  it did not (each failed threshold is printed on stderr, one line each)
  2  bad arguments or an --out path that cannot be written: nothing was run
  3  the results could not be written to --out at the end; the line on stderr says
     where they were written instead

A connection fails when its handshake fails or when the server ends it before
answering anything (e.g. TOO_MANY_CONNECTIONS, UNAUTHORIZED). A message fails with
any error code in the summary (errors.<CODE>), NOT_SENT included.
--max-error-rate R allows up to that fraction of failed connections and of failed
messages (each); --accept-errors allows any; --max-p99 S also fails the run when the
p99 latency (from each message's due time, latency_corrected) is above S seconds.
"""


def configure_load(parser: argparse.ArgumentParser) -> None:
    """Add the ``load`` sub-command's arguments to ``parser``."""
    parser.description = __doc__
    parser.epilog = EXIT_STATUSES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
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
                             "echo server); the same as --protocol raw")
    parser.add_argument("--protocol", choices=("nbstream", "json", "text", "raw"),
                        help="how frames become messages (default nbstream; json, text and "
                             "raw for servers nbstream did not write)")
    parser.add_argument("--type-key", metavar="KEY",
                        help="--protocol json: the key holding a message's type (default type)")
    parser.add_argument("--scenario", metavar="MODULE:FUNCTION",
                        help="run this async user flow instead of the built-in one (module "
                             "found from the current directory)")
    parser.add_argument("--iterations", type=int,
                        help="--scenario: iterations per connection (default 1)")
    parser.add_argument("--transport", choices=("auto", "websockets", "picows"),
                        default="auto",
                        help="the library driving the connections (default auto: picows "
                             "when installed, pip install 'nbstream[fast]')")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds for a handshake or an answer (default 30)")
    parser.add_argument("--token-file", metavar="PATH",
                        help="file holding the token to send as 'Authorization: Bearer' "
                             "(or set NBSTREAM_TOKEN) [env NBSTREAM_TOKEN_FILE]")
    parser.add_argument("--processes", type=int,
                        help="worker processes to spread connections over (default 1); "
                             "with --cluster, how many of its workers (default all)")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="run on the workers of this Dask scheduler (tcp://HOST:8786); "
                             "needs pip install 'nbstream[dask]'")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--out", metavar="PATH.parquet",
                        help="also write every row to this parquet file (checked before "
                             "the run starts)")
    errors = parser.add_mutually_exclusive_group()
    errors.add_argument("--max-error-rate", type=fraction, default=0.0, metavar="RATE",
                        help="fraction of connections, and of messages, that may fail "
                             "(default 0: any failure fails the run)")
    errors.add_argument("--accept-errors", action="store_true",
                        help="errors never fail the run (thresholds still apply)")
    parser.add_argument("--max-p99", type=positive_float, metavar="SECONDS",
                        help="fail the run when the p99 latency is above this")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from nbstream.loadtest.launch import load_test

    thresholds = Thresholds(1.0 if args.accept_errors else args.max_error_rate, args.max_p99)
    if args.out:
        check_writable(args.out)
    token = read_secret("token", args.token_file, "NBSTREAM_TOKEN", os.environ)
    extra: dict[str, Any] = {}
    if token:
        extra["additional_headers"] = {"Authorization": f"Bearer {token[0]}"}
    if args.scenario:
        extra["scenario"] = find_scenario(args.scenario)
    if args.type_key:
        extra["type_key"] = args.type_key
    try:
        result = load_test(
            args.url, connections=args.connections, messages=args.messages, rate=args.rate,
            duration=args.duration, ramp_up=args.ramp_up, payload=args.payload,
            message_type=None if args.raw else args.message_type, timeout=args.timeout,
            processes=args.processes, cluster=args.cluster, progress=not args.no_progress,
            protocol="raw" if args.raw else args.protocol, iterations=args.iterations,
            transport=args.transport, **extra,
        )
    except (TypeError, ValueError, ImportError) as exc:  # bad arguments; --cluster, no Dask
        raise UsageError(str(exc)) from None
    print(result)
    status = PASSED
    summary = {str(metric): float(value) for metric, value in result.summary()["value"].items()}
    for violation in thresholds.violations(summary):
        print(f"nbstream load: failed: {violation}", file=sys.stderr)
        status = FAILED
    if args.out and not save_results(result, args.out):
        status = NOT_WRITTEN
    return status


def find_scenario(spec: str) -> Any:
    """The function named by ``module:function`` (the current directory is searched first).

    Raises:
        UsageError: naming what could not be found.
    """
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise UsageError(f"--scenario {spec}: write MODULE:FUNCTION, e.g. flows:user_flow")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--scenario {spec}: cannot import {module_name} ({exc})") from None
    function = getattr(module, function_name, None)
    if function is None:
        raise UsageError(f"--scenario {spec}: {module_name} has no {function_name}")
    return function


def check_writable(path: str) -> None:
    """Make sure a results file can be written at ``path`` before a run starts.

    Raises:
        UsageError: ``path`` is a directory, its directory does not exist, or writing
            there is not allowed; nothing is left behind.
    """
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--out {path} is a directory; name a file in it, e.g. "
                         f"{target / 'results.parquet'}")
    if not target.parent.is_dir():
        raise UsageError(f"--out {path}: the directory {target.parent} does not exist")
    existed = target.exists()
    try:
        with target.open("ab"):
            pass
    except OSError as exc:
        raise UsageError(f"--out {path} cannot be written: {exc.strerror}") from None
    if not existed:
        target.unlink()


def save_results(result: LoadResult, path: str, fallback_dir: str | None = None) -> bool:
    """Write ``result`` to ``path``; if that fails, to a new file in ``fallback_dir``
    (the temporary directory), saying where on stderr. True when ``path`` was written.
    """
    try:
        result.to_parquet(path)
    except Exception as exc:  # whatever pyarrow raises, the measurements must not be lost
        reason = f"{type(exc).__name__}: {exc}"
    else:
        print(f"rows written to {path}; read them with "
              f"nbstream.LoadResult.read_parquet({path!r})")
        return True
    handle, fallback = tempfile.mkstemp(prefix="nbstream-load-", suffix=".parquet",
                                        dir=fallback_dir)
    os.close(handle)
    try:
        result.to_parquet(fallback)
    except Exception as again:  # say so: the summary was printed above
        os.unlink(fallback)
        print(f"nbstream load: could not write {path} ({reason}) nor {fallback} "
              f"({type(again).__name__}: {again}); only the summary above remains",
              file=sys.stderr)
    else:
        print(f"nbstream load: could not write {path} ({reason}); the results are in "
              f"{fallback}", file=sys.stderr)
    return False

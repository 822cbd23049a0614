"""The ``nbstream`` command: ``demo``, ``serve`` (and ``load``, see its --help)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any


def _serve(args: argparse.Namespace) -> int:
    from nbstream.server import aserve

    options = {k: v for k, v in vars(args).items() if k in _SERVE_OPTIONS and v is not None}

    async def run() -> None:
        server = await aserve(args.handler, host=args.host, port=args.port, path=args.path,
                              metrics=not args.no_metrics, **options)
        print(f"nbstream serving {server.url} (health: {server.health_url}); Ctrl-C stops",
              flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print(await server.astop(args.grace), flush=True)

    try:
        import uvloop
    except ImportError:
        runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(run())
    except (ConnectionError, OSError) as exc:  # port taken, backplane unreachable
        print(f"nbstream serve: {exc}", file=sys.stderr)
        return 1
    return 0


_SERVE_OPTIONS = ("backplane", "max_connections", "max_connections_per_user", "rate_limit",
                  "heartbeat_interval", "heartbeat_timeout", "session_ttl")
"""Server options that ``nbstream serve`` takes as flags (dashes for underscores)."""


def _demo(args: argparse.Namespace) -> int:
    from nbstream.demo import run_demo

    return run_demo(connections=args.connections, messages=args.messages)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nbstream`` command."""
    parser = argparse.ArgumentParser(prog="nbstream", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--log-format", choices=["text", "json"], default="text",
                        help="json: one JSON object per line, with session and user ids")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="end-to-end demo: serve, chat with the agent, load test")
    demo.add_argument("--connections", type=int, default=100)
    demo.add_argument("--messages", type=int, default=10)
    demo.set_defaults(run=_demo)

    serve = sub.add_parser("serve", help="run a server outside a notebook until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--path", default="/ws")
    serve.add_argument("--handler", default="agent", choices=["agent", "echo"])
    serve.add_argument("--grace", type=float, default=5.0,
                       help="seconds in-flight streams get to finish on shutdown")
    serve.add_argument("--no-metrics", action="store_true", help="do not serve /metrics")
    serve.add_argument("--backplane", help="memory (default) or redis://HOST:PORT/DB")
    for name, kind in (("max_connections", int), ("max_connections_per_user", int),
                       ("rate_limit", float), ("heartbeat_interval", float),
                       ("heartbeat_timeout", float), ("session_ttl", float)):
        serve.add_argument("--" + name.replace("_", "-"), type=kind,
                           help="see nbstream.ServerOptions." + name)
    serve.set_defaults(run=_serve)

    for name, (help_text, configure) in _extra_commands().items():
        configure(sub.add_parser(name, help=help_text))
    return parser


def _extra_commands() -> dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]]:
    """Sub-commands defined by other modules (load testing)."""
    from nbstream.loadtest.cli import configure_load

    return {"load": ("load-test a WebSocket server and print a summary", configure_load)}


def _configure_logging(level: int, log_format: str) -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nbstream`` command."""
    args = build_parser().parse_args(argv)
    _configure_logging(logging.INFO if args.verbose else logging.WARNING, args.log_format)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

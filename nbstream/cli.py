"""The nbstream command: demo, serve and load (see each one's --help).

-v/-vv, --log-level and --log-format go before or after the sub-command
(nbstream serve --log-format json), or in the environment (NBSTREAM_LOG_LEVEL,
NBSTREAM_LOG_FORMAT). Exit status 2: a bad flag, environment variable or file,
reported in one line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from nbstream.cliargs import EnvFlag, Parser, UsageError, resolve
from nbstream.logs import RedactTokens

LOG_FLAGS = (
    EnvFlag("--log-level", "which records to show", default="warning",
            choices=("debug", "info", "warning", "error")),
    EnvFlag("--log-format", "json: one JSON object per line, with session and user ids",
            default="text", choices=("text", "json")),
)
"""Logging flags every sub-command takes, before or after its name."""


def _demo(args: argparse.Namespace) -> int:
    from nbstream.demo import run_demo

    return run_demo(connections=args.connections, messages=args.messages)


def _add_log_flags(parser: argparse.ArgumentParser, after_command: bool) -> None:
    # After the sub-command, an absent flag must not hide one given before it.
    default = argparse.SUPPRESS if after_command else None
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="-v logs at INFO level, -vv at DEBUG (overrides --log-level)")
    for flag in LOG_FLAGS:
        parser.add_argument(flag.flag, choices=flag.choices, default=default,
                            help=f"{flag.help} (default {flag.default}) [env {flag.env}]")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nbstream`` command; :func:`parse_args` also reads
    the environment."""
    from nbstream.server.cli import configure_serve

    parser = Parser(prog="nbstream", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_log_flags(parser, after_command=False)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="end-to-end demo: serve, chat with the agent, load test")
    demo.add_argument("--connections", type=int, default=100)
    demo.add_argument("--messages", type=int, default=10)
    demo.set_defaults(run=_demo)

    commands = {"serve": ("run a server outside a notebook until SIGTERM or Ctrl-C",
                          configure_serve), **_extra_commands()}
    parsers = [demo]
    for name, (help_text, configure) in commands.items():
        parsers.append(sub.add_parser(name, help=help_text))
        configure(parsers[-1])
    for command in parsers:
        _add_log_flags(command, after_command=True)
    return parser


def _extra_commands() -> dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]]:
    """Sub-commands defined by other modules (load testing)."""
    from nbstream.loadtest.cli import configure_load

    return {"load": ("load-test a WebSocket server and print a summary", configure_load)}


def parse_args(argv: Sequence[str] | None = None,
               environ: Mapping[str, str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` and fill what it leaves out from ``environ`` (``os.environ``).

    Raises:
        UsageError: an environment variable holds a value its flag would refuse.
        SystemExit: argparse's exit (status 2) for a bad command line, or after --help.
    """
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    resolve(args, LOG_FLAGS, environ)
    resolve(args, getattr(args, "env_flags", ()), environ)
    return args


def log_level(args: argparse.Namespace) -> int:
    """The level ``-v``/``-vv`` or ``--log-level`` asked for."""
    if args.verbose:
        return logging.INFO if args.verbose == 1 else logging.DEBUG
    level: int = logging.getLevelNamesMapping()[args.log_level.upper()]
    return level


def _configure_logging(level: int, log_format: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RedactTokens())  # whichever logger a line comes from
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    # The command's own lines (listening, stopped) show unless only errors are asked for.
    logging.getLogger("nbstream.cli").setLevel(min(level, logging.INFO)
                                               if level <= logging.WARNING else level)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nbstream`` command; returns its exit status."""
    try:
        args = parse_args(argv)
    except UsageError as exc:
        print(f"nbstream: error: {exc}", file=sys.stderr)
        return 2
    _configure_logging(log_level(args), args.log_format)
    try:
        result: int = args.run(args)
    except UsageError as exc:
        print(f"nbstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())

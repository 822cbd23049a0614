"""nbstream serve: run a server outside a notebook until SIGTERM or Ctrl-C.

Every flag can also be set by an environment variable (--max-connections by
NBSTREAM_MAX_CONNECTIONS; the command line wins). Credentials come only from files
or environment variables, never from the command line: --auth-users-file (lines
USER:TOKEN) or --auth-token-file (one shared token), --redis-password-file, or the
variables NBSTREAM_AUTH_USERS, NBSTREAM_AUTH_TOKEN, NBSTREAM_REDIS_PASSWORD.

With a Redis backplane that is not reachable yet (its pod is still starting), the
server tries again with backoff for --backplane-wait seconds, logging each attempt,
before it gives up.

Exit status: 0 after a graceful stop (SIGTERM, Ctrl-C); 1 when it cannot serve (port
taken, Redis never reachable); 2 for a bad flag, variable or file (one line).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nbstream.cliargs import (
    EnvFlag,
    UsageError,
    add_flags,
    non_negative_float,
    port,
    positive_float,
    positive_int,
)
from nbstream.protocol import Backoff
from nbstream.runtime import run_owned
from nbstream.server.credentials import auth_from, backplane_from, short_token_users, tls_from
from nbstream.server.options import ServerOptions

if TYPE_CHECKING:
    from nbstream.server import Server

logger = logging.getLogger("nbstream.cli")

SERVE_FLAGS = (
    EnvFlag("--host", "interface to listen on; 0.0.0.0 for every IPv4 one", default="127.0.0.1"),
    EnvFlag("--port", "TCP port, 0-65535 (0: any free one)", port, default=8000),
    EnvFlag("--path", "WebSocket endpoint", default="/ws"),
    EnvFlag("--handler", "what answers chats", default="agent", choices=("agent", "echo")),
    EnvFlag("--grace", "seconds in-flight streams get to finish on shutdown",
            non_negative_float, default=5.0),
    EnvFlag("--no-metrics", "do not serve /metrics", is_switch=True, default=False),
    EnvFlag("--backplane", "memory, or redis://HOST:PORT/DB to share sessions and fan-out "
            "with other processes (password: --redis-password-file)", default="memory"),
    EnvFlag("--backplane-limits", "while Redis cannot count connections: open (admit, "
            "counting this process only) or closed (refuse users that have a limit)",
            default="open", choices=("open", "closed")),
    EnvFlag("--backplane-wait", "seconds to keep trying to reach Redis at start",
            non_negative_float, default=60.0),
    EnvFlag("--redis-password-file", "file holding the Redis password (or set "
            "NBSTREAM_REDIS_PASSWORD)", metavar="PATH"),
    EnvFlag("--auth-users-file", "file of USER:TOKEN lines: only these tokens get in, as "
            "these users (or set NBSTREAM_AUTH_USERS)", metavar="PATH"),
    EnvFlag("--auth-token-file", "file holding one token shared by all clients (or set "
            "NBSTREAM_AUTH_TOKEN)", metavar="PATH"),
    EnvFlag("--allowed-origin", "a browser Origin allowed to connect (repeat the flag; "
            "the variable takes a comma-separated list); others get HTTP 403",
            many=True, metavar="ORIGIN", variable="NBSTREAM_ALLOWED_ORIGINS"),
    EnvFlag("--tls-cert", "PEM certificate (chain): serve wss:// and https://", metavar="PATH"),
    EnvFlag("--tls-key", "PEM private key of --tls-cert", metavar="PATH"),
    EnvFlag("--max-connections", "see nbstream.ServerOptions.max_connections", positive_int),
    EnvFlag("--max-connections-per-user", "see nbstream.ServerOptions.max_connections_per_user",
            positive_int),
    EnvFlag("--rate-limit", "see nbstream.ServerOptions.rate_limit", positive_float),
    EnvFlag("--heartbeat-interval", "see nbstream.ServerOptions.heartbeat_interval",
            positive_float),
    EnvFlag("--heartbeat-timeout", "see nbstream.ServerOptions.heartbeat_timeout",
            positive_float),
    EnvFlag("--session-ttl", "see nbstream.ServerOptions.session_ttl", non_negative_float),
)
"""The flags of ``nbstream serve``, each also read from ``NBSTREAM_<NAME>``."""

_PASSED_AS_IS = ("max_connections", "max_connections_per_user", "rate_limit",
                 "heartbeat_interval", "heartbeat_timeout", "session_ttl", "backplane_limits")
"""Flags that are server options of the same name; unset ones keep ServerOptions' default."""

_STARTUP_BACKOFF = Backoff(base=0.5, cap=5.0)
"""Delays between attempts to reach the backplane at start (full jitter, at most 5 s)."""


def configure_serve(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` sub-command's flags to ``parser``."""
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_flags(parser, SERVE_FLAGS)
    parser.set_defaults(run=run_serve, env_flags=SERVE_FLAGS)


def server_options(args: argparse.Namespace,
                   environ: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """The ``serve()`` options the flags, variables and secret files ask for, and where
    the auth tokens came from (for the log).

    Raises:
        UsageError: a secret file is missing or malformed, or an option is out of range.
    """
    auth, auth_source = auth_from(args.auth_token_file, args.auth_users_file, environ)
    options: dict[str, Any] = {
        name: getattr(args, name) for name in _PASSED_AS_IS if getattr(args, name) is not None
    }
    options.update(
        backplane=backplane_from(args.backplane, args.redis_password_file, environ),
        metrics=not args.no_metrics, auth=auth, allowed_origins=args.allowed_origin,
        ssl=tls_from(args.tls_cert, args.tls_key),
    )
    try:
        ServerOptions.from_kwargs(options)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    return options, auth_source


def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; the exit status (see the module docstring)."""
    options, auth_source = server_options(args, os.environ)
    _warn_about_exposure(args, options, auth_source)
    try:
        return run_owned(_serve(args, options))
    except OSError as exc:  # the port is taken, the host does not resolve
        logger.error("cannot serve on %s port %s: %s", args.host, args.port, exc)
        return 1


def _warn_about_exposure(args: argparse.Namespace, options: Mapping[str, Any],
                         auth_source: str) -> None:
    if options["auth"] is None and not _loopback(args.host):
        logger.warning("serving on %s without authentication: anyone who can reach it can "
                       "connect and name any user; set NBSTREAM_AUTH_USERS_FILE (lines "
                       "USER:TOKEN) or NBSTREAM_AUTH_TOKEN_FILE", args.host)
    elif options["auth"] is not None:
        logger.info("authentication: %s", auth_source)
    for who in short_token_users(options["auth"]):
        logger.warning("the token of %s is shorter than 16 characters: easy to guess", who)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def _serve(args: argparse.Namespace, options: dict[str, Any]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await _start(args, options, stop)
    if server is None:
        return 0 if stop.is_set() else 1
    logger.info("serving %s (health: %s); SIGTERM or Ctrl-C stops", server.url,
                server.health_url, extra={"url": server.url, "health_url": server.health_url})
    await stop.wait()
    report = await server.astop(args.grace)
    logger.info("%s", report, extra={
        "event": "shutdown", "seconds": round(report.seconds, 3), "closed": report.closed,
        "finished": len(report.finished), "cut": len(report.cut)})
    return 0


async def _start(args: argparse.Namespace, options: dict[str, Any],
                 stop: asyncio.Event) -> Server | None:
    """Start the server; retry an unreachable backplane until ``--backplane-wait`` runs
    out (None: gave up, or ``stop`` was set meanwhile)."""
    from nbstream.server import aserve

    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.backplane_wait
    attempt = 0
    while True:
        attempt += 1
        try:
            return await aserve(args.handler, host=args.host, port=args.port,
                                path=args.path, **options)
        except ConnectionError as exc:  # only the backplane raises it (OSError: the port)
            left = deadline - loop.time()
            if left <= 0:
                logger.error("giving up after %d attempt(s) in %g s: %s", attempt,
                             args.backplane_wait, exc)
                return None
            delay = min(max(0.1, _STARTUP_BACKOFF.delay(attempt - 1)), left)
            logger.warning("backplane not reachable (attempt %d): %s; trying again in "
                           "%.1f s, giving up in %.1f s", attempt, exc, delay, left)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            continue
        logger.info("stopped before the backplane was reachable")
        return None

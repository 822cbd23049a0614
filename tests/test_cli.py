"""The ``nbstream serve`` command: health, metrics, JSON logs with ids, graceful SIGTERM,
flags after the sub-command and from the environment, one-line errors."""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect
from websockets.typing import Origin

import nbstream
from nbstream.cli import parse_args
from nbstream.cliargs import UsageError
from tests.cli_process import NbstreamProcess, run_nbstream
from tests.conftest import TIMEOUT


def serving_url(process: NbstreamProcess) -> str:
    """The ws:// URL the process logged it serves on."""
    line = process.wait_for(lambda line: "serving ws://" in line)
    url = re.search(r"ws://[^\s\"]+", line)
    assert url, line
    return url.group()


@pytest.fixture
def serve_process() -> Iterator[NbstreamProcess]:
    # Logging flags after `serve`, as Kubernetes `args` after the image's ENTRYPOINT.
    process = NbstreamProcess(["serve", "--port", "0", "--handler", "echo",
                               "--max-connections-per-user", "1", "-v", "--log-format",
                               "json"])
    yield process
    process.stop()


def test_serve_answers_health_metrics_logs_json_and_stops_on_sigterm(
    serve_process: NbstreamProcess,
) -> None:
    url = serving_url(serve_process)
    base = url.replace("ws://", "http://").removesuffix("/ws")
    with urllib.request.urlopen(base + "/health", timeout=TIMEOUT) as response:
        assert json.load(response)["status"] == "ok"
    with urllib.request.urlopen(base + "/metrics", timeout=TIMEOUT) as response:
        assert b"nbstream_connections" in response.read()

    client = nbstream.connect(url, user="zoe")
    assert client.chat("hi", timeout=TIMEOUT)[0].text == "hi"
    with pytest.raises(nbstream.StreamClosed):  # the second connection of zoe is refused
        nbstream.connect(url, user="zoe")
    client.close()

    assert serve_process.stop() == 0
    assert serve_process.lines and all(line.startswith("{") for line in serve_process.lines)
    records = serve_process.records()
    refused = [r for r in records if r["message"].startswith("refused a connection")]
    assert refused and refused[0]["user"] == "zoe" and refused[0]["session_id"]
    assert all({"levelname", "name", "asctime"} <= set(r) for r in records)
    serving = next(r for r in records if r["message"].startswith("serving"))
    assert serving["url"] == url
    (report,) = [r for r in records if r.get("event") == "shutdown"]
    assert report["message"].startswith("stopped in") and report["closed"] == 0
    assert report["name"] == "nbstream.cli" and report["seconds"] >= 0


def test_settings_come_from_the_environment_and_the_command_line_wins() -> None:
    environ = {"NBSTREAM_PORT": "9001", "NBSTREAM_HANDLER": "echo",
               "NBSTREAM_LOG_FORMAT": "json", "NBSTREAM_MAX_CONNECTIONS": "7",
               "NBSTREAM_NO_METRICS": "true",
               "NBSTREAM_ALLOWED_ORIGINS": "https://a.example, https://b.example"}
    args = parse_args(["serve", "--port", "9002"], environ)
    assert (args.port, args.handler, args.log_format, args.max_connections) == \
        (9002, "echo", "json", 7)
    assert args.no_metrics is True
    assert args.allowed_origin == ["https://a.example", "https://b.example"]
    defaults = parse_args(["serve"], {})
    assert (defaults.port, defaults.host, defaults.log_format, defaults.log_level) == \
        (8000, "127.0.0.1", "text", "warning")
    assert parse_args(["--log-format", "json", "serve"], {}).log_format == "json"
    assert parse_args(["serve", "-vv"], {}).verbose == 2
    with pytest.raises(UsageError, match="NBSTREAM_PORT='99999': a port is 0-65535"):
        parse_args(["serve"], {"NBSTREAM_PORT": "99999"})
    with pytest.raises(UsageError, match="NBSTREAM_LOG_FORMAT='xml': choose from text, json"):
        parse_args(["serve"], {"NBSTREAM_LOG_FORMAT": "xml"})


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["serve", "--port", "99999"], {}, "argument --port: a port is 0-65535, got 99999"),
    (["serve", "--port", "65536"], {}, "argument --port: a port is 0-65535, got 65536"),
    (["serve", "--port", "-1"], {}, "argument --port: a port is 0-65535, got -1"),
    (["serve", "--heartbeat-interval", "0"], {},
     "argument --heartbeat-interval: must be greater than 0, got 0"),
    (["serve", "--heartbeat-interval", "nan"], {},
     "argument --heartbeat-interval: must be a finite number, got nan"),
    (["serve", "--heartbeat-interval", "30", "--heartbeat-timeout", "x"], {},
     "argument --heartbeat-timeout: expected a number, got 'x'"),
    (["serve"], {"NBSTREAM_GRACE": "-1"}, "NBSTREAM_GRACE='-1': must not be negative"),
    (["serve", "--auth-users-file", "/nonexistent/users"], {},
     "cannot read the auth users from /nonexistent/users: No such file or directory"),
    (["serve", "--tls-cert", "/nonexistent/cert.pem"], {}, "TLS needs both a certificate"),
    (["serve"], {"NBSTREAM_REDIS_PASSWORD": "pw"}, "a Redis password is set"),
    (["serve"], {"NBSTREAM_AUTH_TOKEN": "a" * 20, "NBSTREAM_AUTH_USERS": "ann:" + "b" * 20},
     "auth is set twice ($NBSTREAM_AUTH_TOKEN and $NBSTREAM_AUTH_USERS)"),
    (["serve"], {"NBSTREAM_AUTH_USERS": f"ann:{'a' * 20}\nbob:{'a' * 20}"},
     "$NBSTREAM_AUTH_USERS, line 2: the same token as line 1"),
    (["serve"], {"NBSTREAM_AUTH_USERS": f"# users\n{'b' * 20}"},
     "$NBSTREAM_AUTH_USERS, line 2: expected USER:TOKEN"),
    (["serve"], {"NBSTREAM_AUTH_TOKEN": "  \n"}, "the auth token in $NBSTREAM_AUTH_TOKEN is empty"),
])
def test_bad_values_are_one_line_and_exit_2(args: list[str], env: dict[str, str],
                                           expected: str) -> None:
    done = run_nbstream(args, {**os.environ, **env})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert all(secret not in done.stderr for secret in ("a" * 20, "b" * 20, "pw'"))


def test_serve_takes_tls_origins_and_users_from_files_and_the_environment(
    tmp_path: Path,
) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    users = tmp_path / "users"
    users.write_text("# who may connect\nalice: tok-alice\n\nbob:tok-bob-0123456789\n")
    process = NbstreamProcess(
        ["serve", "--port", "0", "--handler", "echo", "--tls-cert", str(cert)],
        env={**os.environ, "NBSTREAM_TLS_KEY": str(key), "NBSTREAM_AUTH_USERS_FILE": str(users),
             "NBSTREAM_ALLOWED_ORIGINS": "https://app.example", "NBSTREAM_LOG_LEVEL": "info"})
    try:
        url = re.search(r"wss://[^\s\"]+",
                        process.wait_for(lambda line: "serving wss://" in line))
        assert url is not None
        context = ssl.create_default_context()
        ca.configure_trust(context)
        client = nbstream.connect(url.group(), token="tok-bob-0123456789", ssl=context)
        assert client.welcome is not None
        assert client.chat("hi", timeout=TIMEOUT)[0].text == "hi"
        client.close()
        with pytest.raises(nbstream.StreamClosed, match="HTTP 401"):
            nbstream.connect(url.group(), token="tok-carol-0123456789", ssl=context)
        with pytest.raises(InvalidStatus, match="403"):
            with ws_connect(url.group(), ssl=context, origin=Origin("https://evil.example"),
                            open_timeout=TIMEOUT):
                pass
        assert process.wait_for(lambda line: "authentication: 2 user(s) from" in line)
        assert process.wait_for(lambda line: "token of alice is shorter than 16" in line)
    finally:
        assert process.stop() == 0
    assert not any("tok-" in line for line in process.lines)


def test_per_user_limits_fail_as_chosen_when_redis_cannot_count() -> None:
    from nbstream.server.cli import server_options

    closed, _ = server_options(parse_args(["serve", "--backplane-limits", "closed"], {}), {})
    assert closed["backplane_limits"] == "closed"
    from_env, _ = server_options(parse_args(["serve"], {"NBSTREAM_BACKPLANE_LIMITS": "closed"}),
                                 {})
    assert from_env["backplane_limits"] == "closed"
    server = nbstream.Server("echo", "127.0.0.1", 0, "/ws", nbstream.ServerOptions(
        backplane="redis://127.0.0.1:1/0", backplane_limits="closed"), asyncio.new_event_loop())
    assert getattr(server.backplane, "limits", None) == "closed"

"""Secrets stay secret: tokens and passwords never reach logs, reprs or stored results."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import nbstream
from nbstream.cli import main
from nbstream.protocol import Backoff
from nbstream.redact import REDACTED, redact_text, redact_url, redact_value
from tests.conftest import TIMEOUT, ServerFactory, eventually

SECRET = "tok-9f8e7d6c5b4a"
"""A token; no 6 consecutive characters of it may be written anywhere."""
FAST = Backoff(base=0.01, cap=0.05, attempts=50)


def leaks(text: str, secret: str = SECRET) -> list[str]:
    """Every 6-character piece of ``secret`` that appears in ``text``."""
    return [secret[i:i + 6] for i in range(len(secret) - 5) if secret[i:i + 6] in text]


@pytest.mark.parametrize(("text", "expected"), [
    ("GET /ws?user=a&token=abc123&x=1 HTTP/1.1", "GET /ws?user=a&token=[redacted]&x=1 HTTP/1.1"),
    ("> Authorization: Bearer abc.def.ghi", "> Authorization: [redacted]"),
    ("Bearer abc", "Bearer [redacted]"),
    ("""> TEXT '{"type":"auth","data":{"token":"abcdefghijklmno...:00"}' [120 bytes]""",
     """> TEXT '{"type":"auth","data":{"token":"[redacted]"}' [120 bytes]"""),
    ("{'Authorization': 'Bearer abc'}", "{'Authorization': '[redacted]'}"),
    ("redis://:s3cr3t@redis:6379/0 down", "redis://:[redacted]@redis:6379/0 down"),
    ("redis://user:p%40ss@host/0", "redis://user:[redacted]@host/0"),
    ("ws://127.0.0.1:8000/ws?session_id=1", "ws://127.0.0.1:8000/ws?session_id=1"),
    ("chat text about tokens", "chat text about tokens"),
])
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_redact_url_keeps_everything_but_the_secrets() -> None:
    assert redact_url("wss://h:1/ws?user=al&TOKEN=x%20y&last_id=0:3") == \
        f"wss://h:1/ws?user=al&TOKEN={REDACTED}&last_id=0:3"
    assert redact_url("redis://default:pw@r:6379/0") == f"redis://default:{REDACTED}@r:6379/0"
    assert redact_url("ws://h/ws") == "ws://h/ws"


def test_redact_value_walks_mappings_header_pairs_and_strings() -> None:
    value = {"target": "ws://h/ws?token=abc",
             "connect_options": {"additional_headers": [["Authorization", "Bearer abc"],
                                                        ["X-Trace", "1"]],
                                 "extra": {"password": "pw", "n": 3}}}
    assert redact_value(value) == {
        "target": f"ws://h/ws?token={REDACTED}",
        "connect_options": {"additional_headers": [["Authorization", REDACTED],
                                                   ["X-Trace", "1"]],
                            "extra": {"password": REDACTED, "n": 3}}}


async def test_client_lines_never_show_a_token_in_its_url(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await start_server("echo", auth=SECRET)
    client = await nbstream.aconnect(f"{server.url}?token={SECRET}", reconnect=FAST)
    await client.achat("before", timeout=TIMEOUT)
    assert await server.adisconnect(client.session_id or "", abrupt=True)
    await eventually(lambda: client.reconnects == 1, what="the client reconnected")
    await client.achat("after", timeout=TIMEOUT)
    with pytest.raises(TimeoutError) as waited:
        await client.arecv(0.01)
    shown = [caplog.text, repr(client), str(waited.value)]
    await client.aclose()
    assert "connection lost" in caplog.text and "resumed" in caplog.text
    assert f"token={REDACTED}" in caplog.text and f"token={REDACTED}" in repr(client)
    assert not leaks("\n".join(shown))


async def test_auth_messages_logged_at_debug_never_show_the_token(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await start_server("echo", auth={SECRET: "alice"})
    client = await nbstream.aconnect(server.url, token=SECRET, token_in="message")
    await client.achat("hi", timeout=TIMEOUT)
    await client.aclose()
    frames = [r.getMessage() for r in caplog.records if '"type":"auth"' in r.getMessage()]
    assert len(frames) == 2  # sent by the client, received by the server
    assert not leaks(caplog.text)


async def test_load_results_and_their_parquet_file_keep_no_token(
    start_server: ServerFactory, tmp_path: Path,
) -> None:
    server = await start_server("echo", auth={SECRET: "alice"})
    test = nbstream.start_load_test(
        f"{server.url}?token={SECRET}", connections=2, messages=2, progress=False,
        additional_headers={"Authorization": f"Bearer {SECRET}"})
    result = await test.aresult()
    assert result.summary()["value"]["errors"] == 0  # the token got them in
    assert result.parameters["target"] == f"{server.url}?token={REDACTED}"
    path = tmp_path / "run.parquet"
    result.to_parquet(path)
    assert pq.read_table(path).num_rows == 4
    stored = nbstream.LoadResult.read_parquet(path)
    assert not leaks("\n".join([str(result.parameters), str(result), repr(test),
                                result._repr_html_(), str(stored.parameters)]))
    assert not leaks(path.read_bytes().decode("latin-1"))


def test_nbstream_load_sends_a_token_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    server = nbstream.serve("echo", auth={SECRET: "alice"})
    try:
        args = ["load", server.url, "--connections", "2", "--messages", "2", "--no-progress"]
        assert main(args) == 1  # no token: every connection is refused
        assert "UNAUTHORIZED" in capsys.readouterr().out
        token_file = tmp_path / "token"
        token_file.write_text(SECRET + "\n")
        monkeypatch.setitem(os.environ, "NBSTREAM_TOKEN_FILE", str(token_file))
        out = tmp_path / "run.parquet"
        assert main([*args, "--out", str(out)]) == 0
        printed = capsys.readouterr()
        assert not leaks(printed.out + printed.err + out.read_bytes().decode("latin-1"))
    finally:
        server.stop(timeout=1.0)

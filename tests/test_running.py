"""nbstream.stop_all(): stops what this process started and says so in plain words."""

from __future__ import annotations

import nbstream
from nbstream.running import StopAllReport


def test_the_report_reads_as_a_sentence_then_one_line_each() -> None:
    report = StopAllReport({"load test": [], "client": ["client a: closed", "client b: closed"],
                            "proxy": [], "server": ["server s: stopped"]})
    assert str(report) == ("stopped 2 clients and 1 server:\n"
                           "- client a: closed\n- client b: closed\n- server s: stopped")
    assert str(StopAllReport({"client": ["c"]})) == "stopped 1 client:\n- c"
    assert str(StopAllReport({"client": [], "server": []})).startswith("nothing was running")


async def test_stops_servers_clients_and_load_tests_once() -> None:
    server = await nbstream.aserve("echo")
    client = await nbstream.aconnect(server, user="alice")
    test = nbstream.start_load_test(server, connections=2, duration=30, progress=False)
    report = nbstream.stop_all()
    text = str(report)
    assert text.startswith("stopped ")
    assert f"load test of {server.url}: cancelled" in text
    assert f"client of {server.url} (session {client.session_id}): closed" in text
    assert f"server {server.url}: stopped in" in text
    assert not server.running and client.closed is not None and test.done
    assert str(nbstream.stop_all()).startswith("nothing was running")

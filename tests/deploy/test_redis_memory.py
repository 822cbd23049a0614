"""Redis at its maxmemory, with the eviction policy the deploy files give it.

docs/scaling.md ("Redis memory") promises: Redis stays within maxmemory by evicting
session histories (every one has an expiry; Redis picks the least recently used of a
sample, to the second), history writes are not refused, the per-user counts (no
expiry) stay, and a client whose history was evicted resumes with ``recovered:
false`` while the others resume as usual.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

import nbstream
from tests.conftest import TIMEOUT, ServerFactory, eventually, recv_json
from tests.deploy.conftest import DEPLOY, Redis, load_yaml
from tests.deploy.pod import free_port, option

SESSIONS = 60
CHATS = 3
TEXT = "x" * 8_000
"""60 sessions x 3 chats x 8 kB: about 1.4 MB of history for 1 MB of room."""


def manifest_policy() -> list[str]:
    """The eviction flags of the Redis in deploy/kubernetes/redis.yaml."""
    (deployment, _) = load_yaml(DEPLOY / "kubernetes" / "redis.yaml")
    (redis,) = deployment["spec"]["template"]["spec"]["containers"]
    return ["--maxmemory-policy", option(redis["args"], "--maxmemory-policy")]


async def resumed(url: str, session_id: str, last_id: str) -> bool:
    """Whether a resume of ``session_id`` after ``last_id`` on ``url`` recovered."""
    async with connect(f"{url}?session_id={session_id}&last_id={last_id}",
                       subprotocols=[Subprotocol("nbstream.v1")],
                       open_timeout=TIMEOUT) as ws:
        welcome = await recv_json(ws)
        assert welcome["type"] == "welcome", welcome
        return bool(welcome["data"]["recovered"])


@pytest.mark.timeout(120)
async def test_at_maxmemory_old_histories_are_evicted_and_nothing_is_refused(
    start_server: ServerFactory, redis_binary: str, tmp_path: Path,
) -> None:
    port = free_port()
    redis = Redis([redis_binary, *manifest_policy(), "--port", str(port), "--bind",
                   "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                  port, "", tmp_path / "redis.log")
    try:
        room = 1024 * 1024
        maxmemory = int(redis.client.info("memory")["used_memory"]) + room
        redis.client.config_set("maxmemory", maxmemory)
        url = f"redis://127.0.0.1:{port}/0"
        first = await start_server("echo", backplane=url, max_connections_per_user=None)
        held = await nbstream.aconnect(first.url, user="held", reconnect=False)
        positions = []
        for _ in range(SESSIONS):
            client = await nbstream.aconnect(first.url, reconnect=False, timeout=TIMEOUT)
            ids = [(await client.achat(TEXT))[-1].id for _ in range(CHATS)]
            positions.append((client.session_id or "", ids[0]))
        await eventually(lambda: first.health()["queued"] == 0, 3 * TIMEOUT,
                         what="every history write reached Redis")

        stats, memory = redis.client.info("stats"), redis.client.info("memory")
        assert stats["evicted_keys"] > 0  # it was full...
        assert first.health()["dropped"] == 0  # ...and refused no write
        assert memory["used_memory"] <= maxmemory * 1.05, memory
        assert redis.client.smembers("nbstream:conns:held")  # no expiry: never evicted
        await held.aclose()

        await first.astop()  # the histories stay in Redis for the next node
        second = await start_server("echo", backplane=url)
        outcomes = []
        for session_id, last_id in positions:
            keys = [f"nbstream:s:{session_id}", f"nbstream:s:{session_id}:meta"]
            kept = redis.client.exists(*keys) == len(keys)
            outcomes.append((kept, await resumed(second.url, session_id, last_id)))
        assert {kept for kept, _ in outcomes} == {True, False}, outcomes
        assert all(kept == recovered for kept, recovered in outcomes), outcomes
        assert second.health()["dropped"] == 0
    finally:
        redis.stop()

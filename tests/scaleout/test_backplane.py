"""RedisBackplane against a real Redis: history, ownership, fan-out and counts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from nbstream.backplane import Delivery, create
from nbstream.backplane.redis import RedisBackplane
from nbstream.protocol import Message
from tests.scaleout.conftest import eventually
from tests.scaleout.processes import RedisServer, free_port

Nodes = Callable[..., Awaitable[tuple[RedisBackplane, list[Delivery]]]]


@pytest.fixture
async def node(redis_server: RedisServer) -> AsyncIterator[Nodes]:
    """Started backplanes on the test's Redis, each with the deliveries it received."""
    started: list[RedisBackplane] = []

    async def start(history_max_messages: int = 100, **options: Any
                    ) -> tuple[RedisBackplane, list[Delivery]]:
        backplane = RedisBackplane(redis_server.url, **options)
        received: list[Delivery] = []
        await backplane.start(received.append, history_max_messages=history_max_messages)
        started.append(backplane)
        return backplane, received

    yield start
    for backplane in started:
        await backplane.close()


def frame(offset: int) -> bytes:
    return b'{"n":%d}' % offset


async def written(backplane: RedisBackplane) -> None:
    """Wait until every queued write reached Redis."""
    async def idle() -> bool:
        return backplane.health()["queued"] == 0
    await eventually(idle)


async def test_create_gives_a_redis_backplane_for_a_redis_url() -> None:
    backplane = create("redis://127.0.0.1:1/0")
    assert isinstance(backplane, RedisBackplane) and backplane.shared


async def test_start_fails_clearly_when_redis_is_unreachable() -> None:
    backplane = RedisBackplane(f"redis://:secret@127.0.0.1:{free_port()}/0", timeout=0.5)
    with pytest.raises(ConnectionError, match="cannot reach Redis at redis://:\\*\\*\\*@") as info:
        await backplane.start(lambda delivery: None)
    assert "secret" not in str(info.value)


async def test_history_round_trip_through_another_node(node: Nodes, redis_client: Any) -> None:
    a, _ = await node(history_max_messages=5)
    b, _ = await node(history_max_messages=5)
    for offset in range(300):
        a.record("s1", "ann", "e1", offset, frame(offset))
    await written(a)
    assert await redis_client.xlen("nbstream:s:s1") <= 5 + 100  # MAXLEN ~: whole nodes
    record = await b.load("s1")
    assert record is not None
    assert (record.user, record.epoch, record.next_offset) == ("ann", "e1", 300)
    offsets = [offset for offset, _ in record.frames]
    assert offsets == list(range(300 - len(offsets), 300)) and len(offsets) >= 5
    assert record.frames[-1] == (299, frame(299))
    assert 0 < await redis_client.ttl("nbstream:s:s1:meta") <= 3600
    assert await b.load("unknown") is None


async def test_the_node_that_loaded_a_session_owns_it(node: Nodes, redis_client: Any) -> None:
    a, _ = await node()
    b, _ = await node()
    for offset in range(3):
        a.record("s2", None, "e1", offset, frame(offset))
    await written(a)
    record = await b.load("s2")
    assert record is not None and record.user is None
    a.record("s2", None, "e1", 3, frame(3))  # a lost it: its late writes are ignored
    a.forget("s2")  # and so is its forget
    await written(a)
    assert await redis_client.hget("nbstream:s:s2:meta", "next") == b"3"
    b.record("s2", None, "e1", 3, b"from b")
    await written(b)
    again = await a.load("s2")  # a takes it back
    assert again is not None and again.frames[-1] == (3, b"from b")
    a.forget("s2")
    await written(a)
    assert not await redis_client.exists("nbstream:s:s2", "nbstream:s:s2:meta")


async def test_a_new_history_under_the_same_id_replaces_the_old(node: Nodes) -> None:
    a, _ = await node()
    for offset in range(4):
        a.record("s3", "ann", "old", offset, frame(offset))
    a.record("s3", "ann", "new", 0, b"fresh")
    await written(a)
    record = await a.load("s3")
    assert record is not None
    assert (record.epoch, record.next_offset, record.frames) == ("new", 1, [(0, b"fresh")])


async def test_publications_reach_the_other_nodes_only(node: Nodes) -> None:
    a, got_a = await node()
    b, got_b = await node()
    await a.publish(Delivery("ann", Message("content", {"text": "hi"})))
    await b.publish(Delivery(None, Message("content", {"text": "all"})))

    async def arrived() -> bool:
        return len(got_a) == 1 and len(got_b) == 1
    await eventually(arrived)
    assert (got_b[0].user, got_b[0].message.text) == ("ann", "hi")
    assert (got_a[0].user, got_a[0].message.text) == (None, "all")


async def test_counts_add_up_across_live_nodes(node: Nodes, redis_client: Any) -> None:
    a, _ = await node()
    b, _ = await node()
    a.count("ann", +1)
    a.count("ann", +1)
    b.count("ann", +1)

    async def a_sees_b() -> bool:
        return await a.connections_elsewhere("ann") == 1
    await eventually(a_sees_b)
    assert await b.connections_elsewhere("ann") == 2
    await redis_client.hset("nbstream:u:ann", "crashed-node", 7)  # no liveness key
    assert await b.connections_elsewhere("ann") == 2
    assert not await redis_client.hexists("nbstream:u:ann", "crashed-node")
    a.count("ann", -1)
    await written(a)
    assert await b.connections_elsewhere("ann") == 1
    await a.close()
    assert await b.connections_elsewhere("ann") == 0
    assert not await redis_client.exists(f"nbstream:node:{a.node}")


async def test_writes_go_on_after_redis_forgets_the_scripts(node: Nodes, redis_client: Any
                                                            ) -> None:
    a, _ = await node()
    a.record("s4", "ann", "e1", 0, frame(0))
    await written(a)
    await redis_client.script_flush()  # as after a restart
    a.record("s4", "ann", "e1", 1, frame(1))
    await written(a)
    record = await a.load("s4")
    assert record is not None and record.frames == [(0, frame(0)), (1, frame(1))]
    assert a.health()["dropped"] == 0

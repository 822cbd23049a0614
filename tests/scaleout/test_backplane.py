"""RedisBackplane against a real Redis: history, ownership, fan-out and counts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from nbstream.backplane import ClaimOutcome, Delivery, SessionRecord, create
from nbstream.backplane.redis import RedisBackplane
from nbstream.protocol import ErrorCode, Message
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


async def adopted(backplane: RedisBackplane, session: str, user: str | None = "ann"
                  ) -> SessionRecord:
    """Take ``session`` over on ``backplane``; fails unless it was adopted."""
    claim = await backplane.claim(session, user, have_local=False)
    assert claim.outcome is ClaimOutcome.ADOPTED and claim.record is not None, claim
    return claim.record


async def test_history_round_trip_through_another_node(node: Nodes, redis_client: Any) -> None:
    a, _ = await node(history_max_messages=5)
    b, _ = await node(history_max_messages=5)
    for offset in range(300):
        a.record("s1", "ann", "e1", offset, frame(offset))
    await written(a)
    assert await redis_client.xlen("nbstream:s:s1") <= 5 + 100  # MAXLEN ~: whole nodes
    record = await adopted(b, "s1")
    assert (record.user, record.epoch, record.next_offset) == ("ann", "e1", 300)
    offsets = [offset for offset, _ in record.frames]
    assert offsets == list(range(300 - len(offsets), 300)) and len(offsets) >= 5
    assert record.frames[-1] == (299, frame(299))
    assert 0 < await redis_client.ttl("nbstream:s:s1:meta") <= 3600
    unknown = await b.claim("unknown", "ann", have_local=False)
    assert unknown.outcome is ClaimOutcome.UNKNOWN


async def test_a_take_over_fences_the_old_owner_out(node: Nodes, redis_client: Any) -> None:
    a, _ = await node()
    b, _ = await node()
    a.record("s2", None, "e1", 0, frame(0))
    await written(a)
    for offset in range(1, 50):  # queued when b asks
        a.record("s2", None, "e1", offset, frame(offset))
    record = await adopted(b, "s2", None)  # a is alive: it writes what it has, then lets go
    assert record.user is None and record.next_offset == 50
    assert (b.handoffs, b.handoff_timeouts) == (1, 0)
    a.record("s2", None, "e1", 50, frame(50))  # a lost it: its late writes are refused
    a.forget("s2")  # and so is its forget
    await written(a)
    assert await redis_client.hget("nbstream:s:s2:meta", "next") == b"50"
    b.record("s2", None, "e1", 50, b"from b")
    again = await adopted(a, "s2", None)  # a takes it back, after b's write
    assert again.frames[-1] == (50, b"from b")
    a.forget("s2")
    await written(a)
    assert not await redis_client.exists("nbstream:s:s2", "nbstream:s:s2:meta")


async def test_a_claim_by_another_user_changes_nothing(node: Nodes, redis_client: Any) -> None:
    a, _ = await node()
    b, _ = await node()
    a.record("s5", "ann", "e1", 0, frame(0))
    await written(a)
    owner = await redis_client.hget("nbstream:s:s5:meta", "owner")
    for _ in range(3):
        claim = await b.claim("s5", "mallory", have_local=False)
        assert claim.outcome is ClaimOutcome.REFUSED and claim.record is None
    assert await redis_client.hget("nbstream:s:s5:meta", "owner") == owner
    a.record("s5", "ann", "e1", 1, frame(1))  # a still owns it and writes
    await written(a)
    assert await redis_client.hget("nbstream:s:s5:meta", "next") == b"2"
    mine = await a.claim("s5", "ann", have_local=True)
    assert mine.outcome is ClaimOutcome.MINE


async def test_a_new_history_under_the_same_id_replaces_the_old(node: Nodes) -> None:
    a, _ = await node()
    b, _ = await node()
    for offset in range(4):
        a.record("s3", "ann", "old", offset, frame(offset))
    a.record("s3", "ann", "new", 0, b"fresh")
    await written(a)
    record = await adopted(b, "s3")
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


async def test_per_user_limits_hold_across_live_nodes(node: Nodes, redis_client: Any) -> None:
    a, _ = await node()
    b, _ = await node()
    assert await a.admit_user("ann", "c1", 3) is None
    assert await a.admit_user("ann", "c2", 3) is None
    assert await b.admit_user("ann", "c3", 3) is None
    refused = await b.admit_user("ann", "c4", 3)
    assert refused is not None and refused.code == ErrorCode.TOO_MANY_CONNECTIONS
    assert await a.connections_elsewhere("ann") == 1
    assert await b.connections_elsewhere("ann") == 2
    b.leave("ann", "c3")
    await written(b)
    await redis_client.sadd("nbstream:conns:ann", "crashed/c9")  # no liveness key
    assert await b.admit_user("ann", "c4", 3) is None  # the dead node's count is dropped
    assert not await redis_client.sismember("nbstream:conns:ann", "crashed/c9")
    a.leave("ann", "c1")
    await written(a)
    assert await b.connections_elsewhere("ann") == 1
    await a.close()
    assert await b.connections_elsewhere("ann") == 0
    assert not await redis_client.exists(f"nbstream:node:{a.node}")


async def test_writes_go_on_after_redis_forgets_the_scripts(node: Nodes, redis_client: Any
                                                            ) -> None:
    a, _ = await node()
    b, _ = await node()
    a.record("s4", "ann", "e1", 0, frame(0))
    await written(a)
    await redis_client.script_flush()  # as after a restart
    a.record("s4", "ann", "e1", 1, frame(1))
    await written(a)
    record = await adopted(b, "s4")
    assert record.frames == [(0, frame(0)), (1, frame(1))]
    assert a.health()["dropped"] == 0

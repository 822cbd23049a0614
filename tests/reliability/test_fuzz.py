"""A live fuzz run: thousands of malformed frames over many connections, then a
well-behaved client still gets correct answers and nothing leaked."""

import asyncio
import json
import random
from collections import Counter

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

import nbstream
from tests.conftest import TIMEOUT, ServerFactory

CONNECTIONS = 20
FRAMES_PER_CONNECTION = 200
MAX_BYTES = 64 * 1024


def random_frame(rng: random.Random) -> tuple[str, str | bytes, bool]:
    """(kind, payload, send as text)."""
    kind = rng.choice(["bad-utf8", "binary", "deep-json", "huge-number", "wrong-types",
                       "random-envelope", "not-json", "oversize", "valid-chat", "ping"])
    if kind == "bad-utf8":
        return kind, b'{"type": "chat", "data": {"text": "\xff\xfe"}}', True
    if kind == "binary":
        return kind, rng.randbytes(rng.randint(0, 512)), False
    if kind == "deep-json":
        depth = rng.randint(100, 20_000)
        return kind, '{"type": "chat", "data": ' + "[" * depth + "]" * depth + "}", True
    if kind == "huge-number":
        digits = "9" * rng.randint(20, 5000)
        frame = f'{{"type": "chat", "data": {{"text": "n", "n": {digits}}}, "id": {digits}}}'
        return kind, frame, True
    if kind == "wrong-types":
        value: object = rng.choice([1, 1.5, None, True, [], {}, "x" * 50])
        field = rng.choice(["type", "data", "id", "timestamp", "content"])
        return kind, json.dumps({"type": "chat", "data": {"text": "t"}, field: value}), True
    if kind == "random-envelope":
        obj = {rng.choice(["type", "data", "id", "zzz"]): rng.choice(
            ["chat", "ping", "pong", "auth", "end", 3, None, {"text": 1}]) for _ in range(3)}
        return kind, json.dumps(obj), True
    if kind == "not-json":
        return kind, "".join(rng.choice("{}[]\":,abc\\") for _ in range(rng.randint(0, 80))), True
    if kind == "oversize":
        return kind, json.dumps({"type": "chat", "data": {"text": "o" * (MAX_BYTES + 1)}}), True
    if kind == "ping":
        return kind, json.dumps({"type": "ping"}), True
    return kind, json.dumps({"type": "chat", "data": {"text": "fine"}}), True


async def drain(ws: ClientConnection) -> None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    except (ConnectionClosed, TimeoutError):
        pass


async def fuzz_connection(url: str, seed: int, closes: Counter[int], kinds: Counter[str]) -> None:
    rng = random.Random(seed)
    sent = 0
    while sent < FRAMES_PER_CONNECTION:
        async with connect(url, max_size=None) as ws:
            reader = asyncio.create_task(drain(ws))
            try:
                while sent < FRAMES_PER_CONNECTION and ws.state is State.OPEN:
                    kind, payload, text = random_frame(rng)
                    await ws.send(payload, text=text)
                    kinds[kind] += 1
                    sent += 1
                    await asyncio.sleep(0.001)  # let the server answer, or close on us
            except ConnectionClosed:
                pass
            await asyncio.wait_for(reader, TIMEOUT * 2)
            if ws.close_code is not None:
                closes[ws.close_code] += 1


async def test_fuzzing_breaks_nothing(start_server: ServerFactory) -> None:
    server = await start_server("echo", max_message_bytes=MAX_BYTES,
                                max_connections_per_user=None)
    tasks_before = len(asyncio.all_tasks())
    closes: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    await asyncio.gather(*(fuzz_connection(server.url, seed, closes, kinds)
                           for seed in range(CONNECTIONS)))
    assert sum(kinds.values()) == CONNECTIONS * FRAMES_PER_CONNECTION
    assert set(closes) <= {1000, 1007, 1009}, closes  # bad UTF-8: 1007, too big: 1009
    assert closes[1007] and closes[1009], closes

    client = await nbstream.aconnect(server.url)
    replies = await client.achat("are you still well?", timeout=TIMEOUT)
    assert [m.type for m in replies] == ["content", "end"]
    assert replies[0].text == "are you still well?"
    await client.aclose()

    async with asyncio.timeout(TIMEOUT):
        while len(server.connections) or server.health()["sessions"]:
            await asyncio.sleep(0.05)
        while len(asyncio.all_tasks()) > tasks_before:
            await asyncio.sleep(0.05)

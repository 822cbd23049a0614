"""What every peer test checks of a load test against a server nbstream did not write."""

from __future__ import annotations

from typing import Any

import nbstream


async def raw_load_test(url: str, payload: Any, connections: int = 4,
                        messages: int = 25) -> nbstream.LoadResult:
    """``load_test(url, message_type=None)``: every message answered, none failed."""
    result = await nbstream.aload_test(url, connections=connections, messages=messages,
                                       message_type=None, payload=payload, progress=False,
                                       timeout=10)
    m = result.messages
    assert len(m) == connections * messages and m["error"].isna().all(), (
        m["error"].value_counts())
    assert (m["replies"] == 1).all() and (m["latency"] > 0).all()
    assert (result.connections["close_code"] == 1000).all()
    assert result.summary()["value"]["completed"] == connections * messages
    return result

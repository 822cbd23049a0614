"""The row order of LoadResult.messages: sorted by numpy, and only when out of order."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from nbstream.loadtest.frames import sort_order

KEYS = st.lists(st.tuples(st.integers(-1, 4), st.integers(0, 6)), max_size=40)


@given(KEYS)
def test_the_order_is_the_stable_sort_by_every_key(pairs: list[tuple[int, int]]) -> None:
    first = np.array([a for a, _ in pairs], dtype=np.int64)
    second = np.array([b for _, b in pairs], dtype=np.int64)
    order = sort_order([first, second])
    rows = np.arange(len(pairs)) if order is None else order
    expected = sorted(range(len(pairs)), key=lambda i: pairs[i])  # Python's sort is stable
    assert list(rows) == expected


def test_rows_already_in_order_are_left_alone() -> None:
    connection = np.repeat(np.arange(3, dtype=np.int64), 4)
    seq = np.tile(np.arange(4, dtype=np.int64), 3)
    assert sort_order([connection, seq]) is None
    assert sort_order([seq]) is not None  # 0 1 2 3 0 ...: not sorted by seq alone
    assert sort_order([np.array([5], dtype=np.int64)]) is None

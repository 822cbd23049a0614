"""KeptRows: bounded, fair between types, oldest first."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from nbstream.views.keptrows import KeptRows


class Row(NamedTuple):
    seq: int
    type: str


def test_under_the_limit_everything_is_kept_in_order() -> None:
    kept: KeptRows[Row] = KeptRows(5)
    for seq, type in enumerate("abcab"):
        kept.add(Row(seq, type))
    assert [r.seq for r in kept] == [0, 1, 2, 3, 4] and kept.dropped == 0


def test_the_largest_type_gives_way_oldest_first() -> None:
    kept: KeptRows[Row] = KeptRows(4)
    for seq, type in enumerate("aaaaab"):
        kept.add(Row(seq, type))
    assert [r.seq for r in kept] == [2, 3, 4, 5] and kept.dropped == 2
    for seq in range(6, 20):
        kept.add(Row(seq, "a"))
    assert kept.of_type("b") == [Row(5, "b")]  # the rare type stays
    assert len(kept) == 4 and kept.dropped == 16


def test_between_equal_types_the_oldest_row_goes() -> None:
    kept: KeptRows[Row] = KeptRows(2)
    for seq, type in enumerate("abc"):
        kept.add(Row(seq, type))
    assert [r.seq for r in kept] == [1, 2]
    assert kept.of_type("a") == []


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        KeptRows(0)

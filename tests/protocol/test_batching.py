import pytest

from nbstream.protocol import Batcher


def test_full_batch_is_returned_in_order() -> None:
    batcher = Batcher(max_size=3, max_wait=1.0)
    assert batcher.add(b"1", now=0.0) is None
    assert batcher.add(b"2", now=0.1) is None
    assert batcher.add(b"3", now=0.2) == [b"1", b"2", b"3"]
    assert len(batcher) == 0 and batcher.deadline is None


def test_deadline_is_set_by_the_oldest_message() -> None:
    batcher = Batcher(max_size=10, max_wait=0.5)
    batcher.add(b"a", now=1.0)
    batcher.add(b"b", now=1.4)
    assert batcher.deadline == 1.5
    assert not batcher.due(1.49) and batcher.due(1.5)
    assert batcher.drain() == [b"a", b"b"]
    assert batcher.drain() == []


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Batcher(max_size=0, max_wait=0.1)

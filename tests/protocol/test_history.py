from nbstream.protocol import BoundedHistory


def test_count_bound() -> None:
    history = BoundedHistory(max_messages=3, max_bytes=10_000)
    for i in range(10):
        history.add(b"x" * (i + 1))
    assert len(history) == 3
    assert list(history) == [b"x" * 8, b"x" * 9, b"x" * 10]
    assert history.total_bytes == 27
    assert history.evicted == 7


def test_byte_bound_counts_encoded_bytes_and_adjusts_total_on_eviction() -> None:
    history = BoundedHistory(max_messages=100, max_bytes=100)
    for _ in range(25):
        history.add(b"y" * 30)
        assert history.total_bytes <= 100
        assert history.total_bytes == sum(len(e) for e in history)
    assert len(history) == 3


def test_message_larger_than_the_bound_empties_the_history() -> None:
    history = BoundedHistory(max_messages=10, max_bytes=50)
    history.add(b"a" * 10)
    offset = history.add(b"b" * 51)
    assert len(history) == 0 and history.total_bytes == 0
    assert history.since(offset) is None


def test_since_returns_what_was_missed_or_none_for_a_gap() -> None:
    history = BoundedHistory(max_messages=3, max_bytes=1000)
    offsets = [history.add(str(i).encode()) for i in range(5)]
    assert offsets == [0, 1, 2, 3, 4]
    assert history.since(3) == [b"3", b"4"]
    assert history.since(5) == []
    assert history.since(1) is None


def test_many_adds_keep_both_bounds_and_an_exact_byte_total() -> None:
    history = BoundedHistory(max_messages=1000, max_bytes=5_000)
    for i in range(200_000):
        history.add(b"z" * (1 + i % 9))
    assert len(history) <= 1000 and history.total_bytes <= 5_000
    assert history.total_bytes == sum(len(frame) for frame in history)
    assert history.next_offset == 200_000
    assert history.first_offset == 200_000 - len(history)

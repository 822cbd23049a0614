"""TCP-level faults on a fake clock: each delays, splits, drops or ends bytes as stated."""

from __future__ import annotations

import random
import statistics

from nbstream.faults.pipe import Pipe
from nbstream.faults.units import Signal, Unit, UnitKind
from nbstream.faults.vocabulary import Fault
from tests.faults.wire import Driver, fault, raw


def driver(*faults: Fault, seed: int = 1) -> Driver:
    pipe = Pipe("down")
    rng = random.Random(seed)
    for f in faults:
        pipe.install(f, random.Random(rng.getrandbits(64)), 0.0)
    return Driver(pipe)


def test_latency_holds_each_piece_ms_and_keeps_the_order() -> None:
    d = driver(fault("latency", ms=50))
    d.push(0.0, raw(b"a"))
    d.push(0.010, raw(b"b"))
    assert d.run(0.049) == []
    assert [(round(at, 6), item) for at, item in d.run()] == [(0.05, b"a"), (0.06, b"b")]


def test_jitter_spreads_arrivals_within_its_bounds_never_reordering() -> None:
    d = driver(fault("latency", ms=50, jitter_ms=20))
    for i in range(200):
        d.push(i * 0.1, raw(bytes([i])))  # far apart: no piece waits for another
    out = d.run()
    delays = [at - i * 0.1 for i, (at, _) in enumerate(out)]
    assert d.data() == bytes(range(200))
    assert all(0.030 - 1e-9 <= delay <= 0.070 + 1e-9 for delay in delays)
    assert statistics.pstdev(delays) > 0.008  # uniform over +/-20 ms: about 11.5 ms


def test_the_same_seed_jitters_the_same_way() -> None:
    def run(seed: int) -> list[float]:
        d = driver(fault("latency", ms=50, jitter_ms=20), seed=seed)
        for i in range(20):
            d.push(i * 0.1, raw(b"x"))
        return [at for at, _ in d.run()]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_bandwidth_lets_kbps_through_in_small_pieces() -> None:
    d = driver(fault("bandwidth", kbps=100))
    d.push(0.0, raw(b"x" * 100_000))
    out = d.run()
    assert d.data() == b"x" * 100_000
    assert abs(out[-1][0] - 1.0) < 1e-9  # 100,000 bytes at 100,000 bytes/s
    assert max(len(item) for _, item in out if isinstance(item, bytes)) == 2_000


def test_slicer_cuts_data_into_pieces_delay_us_apart() -> None:
    d = driver(fault("slicer", average_size=1, delay_us=100))
    d.push(0.0, raw(b"hello"))
    out = d.run()
    assert [item for _, item in out] == [b"h", b"e", b"l", b"l", b"o"]
    assert [round(at * 1e6) for at, _ in out] == [0, 100, 200, 300, 400]


def test_slicer_varies_sizes_around_the_average() -> None:
    d = driver(fault("slicer", average_size=10, size_variation=5))
    d.push(0.0, raw(bytes(1000)))
    sizes = [len(item) for _, item in d.run() if isinstance(item, bytes)]
    assert sum(sizes) == 1000 and min(sizes) >= 5 and max(sizes) <= 15 and len(set(sizes)) > 3


def test_timeout_zero_swallows_everything_and_never_closes() -> None:
    timeout = fault("timeout", ms=0)
    d = driver(timeout)
    d.push(0.0, raw(b"lost"))
    assert d.run() == [] and d.pipe.deadline() is None
    d.pipe.uninstall(timeout.id, 5.0)  # Toxiproxy: removing it closes (data was lost)
    assert d.pipe.poll(5.0) == [Signal.CLOSE]


def test_timeout_closes_after_ms() -> None:
    d = driver(fault("timeout", ms=100))
    d.push(0.0, raw(b"lost"))
    assert d.run() == [(0.1, Signal.CLOSE)]


def test_reset_peer_resets_ms_after_the_next_data_which_is_dropped() -> None:
    d = driver(fault("reset_peer", ms=200))
    assert d.pipe.deadline() is None  # nothing happens on an idle connection
    d.push(1.0, raw(b"dropped"))
    assert d.run() == [(1.2, Signal.RESET)]


def test_a_reset_skips_the_queues_behind_it() -> None:
    d = driver(fault("reset_peer", ms=0), fault("latency", ms=500))
    d.push(0.0, raw(b"x"))
    assert d.out == [(0.0, Signal.RESET)]


def test_limit_data_closes_after_exactly_bytes() -> None:
    d = driver(fault("limit_data", bytes=10))
    d.push(0.0, raw(b"12345678"))
    d.push(0.1, raw(b"abcdefg"))
    d.push(0.2, raw(b"never"))
    assert d.run() == [(0.0, b"12345678"), (0.1, b"ab"), (0.1, Signal.CLOSE)]


def test_slow_close_delays_the_end_only() -> None:
    d = driver(fault("slow_close", ms=300))
    d.push(0.0, raw(b"data"))
    d.finish(0.1)
    assert d.run() == [(0.0, b"data"), (0.4, Signal.EOF)]


def test_removing_a_fault_passes_what_it_held_on_at_once() -> None:
    latency = fault("latency", ms=1000)
    d = driver(latency)
    d.push(0.0, raw(b"held"))
    d.pipe.uninstall(latency.id, 0.2)
    assert d.pipe.poll(0.2) == [b"held"] and d.pipe.held_bytes == 0


def test_held_bytes_counts_what_stages_hold() -> None:
    d = driver(fault("latency", ms=100))
    d.push(0.0, raw(b"x" * 500))
    assert d.pipe.held_bytes == 500
    d.run()
    assert d.pipe.held_bytes == 0


def test_a_frozen_pipe_keeps_everything_until_it_thaws() -> None:
    pipe = Pipe("down")
    pipe.frozen = True
    pipe.push([Unit(UnitKind.RAW, b"a"), Unit.of_signal(Signal.EOF)], 0.0)
    assert pipe.poll(1.0) == [] and pipe.held_bytes == 1
    pipe.frozen = False
    assert pipe.poll(1.0) == [b"a", Signal.EOF]

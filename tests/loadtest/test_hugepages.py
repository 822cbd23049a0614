"""Result builds allocate without numpy's huge-page advice (nbstream/loadtest/hugepages.py).

These tests fail loudly when a numpy release moves the private switch the module
uses, and check the effect for real: the kernel's own record of each mapping
(``VmFlags`` in /proc/self/smaps, ``hg`` for ``madvise(MADV_HUGEPAGE)``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy
import numpy.typing as npt
import pytest

from nbstream.loadtest import hugepages
from nbstream.loadtest.recorder import Recorder
from nbstream.loadtest.result import LoadResult

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def advised_huge(array: npt.NDArray[numpy.uint8]) -> bool:
    """Whether any mapping under ``array``'s data is marked MADV_HUGEPAGE."""
    start = array.ctypes.data
    end = start + array.nbytes
    inside = found = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields[0] == "VmFlags:":
            found = found or (inside and "hg" in fields[1:])
        elif "-" in fields[0] and not fields[0].endswith(":"):
            low, high = (int(bound, 16) for bound in fields[0].split("-"))
            inside = low < end and high > start
    return found


def numpy_setting() -> bool:
    setter = hugepages._set_madvise_hugepage
    assert setter is not None
    current = setter(True)
    setter(current)
    return current


@pytest.fixture
def switch() -> Iterator[Callable[[bool], bool]]:
    setter = hugepages._set_madvise_hugepage
    if setter is None:
        pytest.fail("numpy's huge-page switch was not found: check nbstream/loadtest/"
                    f"hugepages.py against numpy {numpy.__version__} (or unset "
                    "NUMPY_MADVISE_HUGEPAGE for the tests)")
    before = setter(True)
    yield setter
    setter(before)


def big() -> npt.NDArray[numpy.uint8]:
    """An array numpy advises (4 MiB and more) in a mapping of its own: glibc maps every
    block over 32 MiB afresh, while a smaller one may reuse heap that an earlier
    test's array had advised (this test then failed one run in two)."""
    return numpy.ones(64 << 20, numpy.uint8)


def test_installed_numpy_is_one_the_module_was_checked_against() -> None:
    assert hugepages.supported(numpy.__version__), (
        f"numpy {numpy.__version__}: check nbstream/loadtest/hugepages.py against it")


@pytest.mark.parametrize(("found", "ok"), [("1.26.4", True), ("2.4.6", True),
                                           ("3.0.0", False), ("dev", False)])
def test_supported_majors(found: str, ok: bool) -> None:
    assert hugepages.supported(found) is ok


@pytest.mark.skipif(not THP.exists(), reason="no transparent huge pages in this kernel")
def test_arrays_made_inside_are_not_advised_huge(switch: Callable[[bool], bool]) -> None:
    assert advised_huge(big())  # numpy's own behaviour, switched on by the fixture
    with hugepages.without_huge_pages():
        assert not advised_huge(big())
        with hugepages.without_huge_pages():
            assert not advised_huge(big())
        assert not advised_huge(big())  # still inside the outer block
    assert advised_huge(big())


def test_setting_restored_after_an_exception(switch: Callable[[bool], bool]) -> None:
    with pytest.raises(ZeroDivisionError), hugepages.without_huge_pages():
        assert numpy_setting() is False
        1 / 0  # noqa: B018
    assert numpy_setting() is True


def test_overlapping_threads_restore_the_setting(switch: Callable[[bool], bool]) -> None:
    both_inside = threading.Barrier(2, timeout=10)
    first_left = threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with hugepages.without_huge_pages():
            both_inside.wait()
        first_left.set()

    def second() -> None:
        with hugepages.without_huge_pages():
            both_inside.wait()
            assert first_left.wait(10)
            seen.append(numpy_setting())  # the first block ended, this one has not

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == [False]
    assert numpy_setting() is True


def test_a_result_is_built_inside(monkeypatch: pytest.MonkeyPatch,
                                  switch: Callable[[bool], bool]) -> None:
    calls: list[bool] = []

    def spy(enabled: bool) -> bool:
        calls.append(enabled)
        return switch(enabled)

    monkeypatch.setattr(hugepages, "_set_madvise_hugepage", spy)
    recorder = Recorder()
    record = recorder.message(0, 0, 1, 1, 10)
    recorder.finish(record, 2)
    LoadResult.from_parts([recorder.to_part(0)], {"model": "closed"})
    assert calls == [False, True, False, True]  # the worker's columns, then the frames


def test_nothing_else_reaches_into_numpy_internals() -> None:
    root = Path(hugepages.__file__).parents[1]
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for path in root.rglob("*.py") if path.name != "hugepages.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "_set_madvise_hugepage" in line or "numpy._core" in line or "numpy.core" in line
    ]
    assert offenders == []

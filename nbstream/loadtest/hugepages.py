"""Results built without numpy's huge-page advice: the one use of numpy beyond its
documented API, fenced in this module.

numpy asks Linux for transparent huge pages (``madvise(MADV_HUGEPAGE)``) for every
array of 4 MiB or more. A fault on a fresh huge page can be slow: on this machine (a
VM with a memory balloon) building the result of a million messages took 1.9 s of
kernel time in 163 huge-page faults, with no compaction, against 0.3 s with ordinary
pages, and swung from run to run (benchmarks/RESULTS.md, "Load generator costs").
A build reads each array a few times in order, which the bigger pages barely speed up.

numpy documents the switch as the ``NUMPY_MADVISE_HUGEPAGE`` environment variable,
read when numpy is imported: too late in a notebook that imported pandas first. Its
run-time twin ``_set_madvise_hugepage`` is private, so this module uses it only for
the numpy majors in :data:`SUPPORTED_MAJOR` (elsewhere numpy decides, as before),
and tests/loadtest/test_hugepages.py fails loudly when a numpy release moves it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import import_module

import numpy

SUPPORTED_MAJOR = range(1, 3)
"""numpy major versions whose ``_set_madvise_hugepage`` this module was checked against."""


def supported(found: str) -> bool:
    """Whether numpy ``found`` is a release this module may reach into."""
    try:
        return int(found.split(".", 1)[0]) in SUPPORTED_MAJOR
    except ValueError:
        return False


def _switch() -> Callable[[bool], bool] | None:
    """numpy's setter (it returns the previous setting), or None where not to touch it."""
    if not supported(numpy.__version__) or "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return None  # an unchecked release, or the user chose through numpy's own switch
    package = "numpy.core" if numpy.__version__.startswith("1.") else "numpy._core"
    setter: Callable[[bool], bool] = import_module(f"{package}.multiarray")._set_madvise_hugepage
    return setter


_set_madvise_hugepage = _switch()
_lock = threading.Lock()
_depth = 0
_before = True
"""numpy's setting when the outermost :func:`without_huge_pages` began."""


@contextmanager
def without_huge_pages() -> Iterator[None]:
    """Arrays allocated inside get ordinary pages; numpy's setting is restored after
    the outermost block ends (blocks may nest and overlap across threads)."""
    global _depth, _before
    setter = _set_madvise_hugepage
    if setter is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _before = setter(False)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                setter(_before)

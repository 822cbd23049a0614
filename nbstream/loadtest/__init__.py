"""Load testing that lands in pandas: ``nbstream.load_test(url)`` returns a LoadResult.

Modules, one idea each: ``options`` (every keyword), ``plan`` (the timetable),
``runner`` (the connections), ``recorder`` (rows and HDR histograms), ``workers``
(this loop or N processes), ``cluster`` (the workers of a Dask cluster, ``cluster=``),
``faults`` (a fault schedule), ``progress`` (live figures and the progress bar),
``result`` (LoadResult), ``launch`` (the functions below), ``cli`` (``nbstream load``).
See docs/loadtest.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbstream.loadtest.launch import LoadTest, aload_test, load_test, start_load_test
    from nbstream.loadtest.progress import LoadProgress
    from nbstream.loadtest.result import LoadResult

_EXPORTS = {
    "LoadProgress": "nbstream.loadtest.progress",
    "LoadResult": "nbstream.loadtest.result",
    "LoadTest": "nbstream.loadtest.launch",
    "aload_test": "nbstream.loadtest.launch",
    "load_test": "nbstream.loadtest.launch",
    "start_load_test": "nbstream.loadtest.launch",
}

__all__ = [
    "LoadProgress",
    "LoadResult",
    "LoadTest",
    "aload_test",
    "load_test",
    "start_load_test",
]


def __getattr__(name: str) -> object:
    """Import a public name's module on first use, so that the command-line tools and
    ``import nbstream`` stay fast (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

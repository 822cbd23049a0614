"""Load testing that lands in pandas: ``nbstream.load_test(url)`` returns a LoadResult.

Modules, one idea each: ``options`` (every keyword), ``plan`` (the timetable),
``runner`` (the connections and the built-in flow), ``scenario`` (scripted user flows
and :class:`User`), ``client`` (the lean client of each connection),
``transport``/``picows_transport``/``transports`` (the WebSocket library under it),
``recorder`` (rows), ``columns``/``histograms``/``frames`` (typed columns, HDR
histograms, DataFrames), ``workers`` (this loop or N processes), ``shipping``
(functions to other processes), ``cluster`` (the workers of a Dask cluster,
``cluster=``), ``faults`` (a fault schedule), ``progress`` (live figures and the
progress bar), ``result`` (LoadResult, with ``metrics``, ``storage``, ``plot``),
``launch`` (the functions below), ``cli`` (``nbstream load``). See docs/loadtest.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbstream import lazy

if TYPE_CHECKING:
    from nbstream.loadtest.client import LoadClient
    from nbstream.loadtest.launch import LoadTest, aload_test, load_test, start_load_test
    from nbstream.loadtest.progress import LoadProgress
    from nbstream.loadtest.result import LoadResult
    from nbstream.loadtest.scenario import User

_EXPORTS = {
    "LoadClient": "nbstream.loadtest.client",
    "LoadProgress": "nbstream.loadtest.progress",
    "LoadResult": "nbstream.loadtest.result",
    "LoadTest": "nbstream.loadtest.launch",
    "User": "nbstream.loadtest.scenario",
    "aload_test": "nbstream.loadtest.launch",
    "load_test": "nbstream.loadtest.launch",
    "start_load_test": "nbstream.loadtest.launch",
}

__all__ = [
    "LoadClient",
    "LoadProgress",
    "LoadResult",
    "LoadTest",
    "User",
    "aload_test",
    "load_test",
    "start_load_test",
]


__getattr__ = lazy.loader(__name__, _EXPORTS)

"""Load testing that lands in pandas: ``nbstream.load_test(url)`` returns a LoadResult.

Modules, one idea each: ``plan`` (the timetable), ``runner`` (the connections),
``recorder`` (rows and HDR histograms), ``workers`` (this loop or N processes),
``cluster`` (the workers of a Dask cluster, ``cluster=``), ``progress`` (live figures
and the progress bar), ``result`` (LoadResult), ``launch`` (the functions below),
``cli`` (``nbstream load``). See docs/loadtest.md.
"""

from nbstream.loadtest.launch import LoadTest, aload_test, load_test, start_load_test
from nbstream.loadtest.progress import LoadProgress
from nbstream.loadtest.result import LoadResult

__all__ = [
    "LoadProgress",
    "LoadResult",
    "LoadTest",
    "aload_test",
    "load_test",
    "start_load_test",
]

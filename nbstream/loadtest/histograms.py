"""Mergeable latency histograms (HdrHistogram, microseconds, 3 significant digits).

HDR histograms add exactly: the merged histogram of several workers is the
histogram of all their rows (:func:`histogram_of` on the merged column gives the
same counts), which is why results of many processes and Dask workers merge exactly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

HISTOGRAM_LOWEST_US = 1
HISTOGRAM_HIGHEST_US = 86_400_000_000
"""Values are microseconds from 1 µs to one day; longer ones are clamped to a day."""
HISTOGRAM_DIGITS = 3
HISTOGRAMS = ("latency", "latency_corrected", "ttft", "ttft_corrected", "connect")
"""Histogram names; each holds the column of the same name over successful messages,
except ``ttft_corrected`` (``first_reply_at - intended_at``) and ``connect``
(``connect_latency`` of the connections that opened)."""


def new_histogram() -> HdrHistogram:
    """An empty latency histogram (microseconds, 1 µs to one day, 3 digits)."""
    return HdrHistogram(HISTOGRAM_LOWEST_US, HISTOGRAM_HIGHEST_US, HISTOGRAM_DIGITS)


def histogram_of(seconds: npt.NDArray[np.float64]) -> HdrHistogram:
    """The histogram of finite latencies in seconds (recorded as whole microseconds)."""
    histogram = new_histogram()
    values = seconds[np.isfinite(seconds)]
    micros = np.clip(np.rint(values * 1e6), 0, HISTOGRAM_HIGHEST_US).astype(np.int64)
    for value, count in zip(*np.unique(micros, return_counts=True), strict=True):
        histogram.record_value(int(value), int(count))
    return histogram


def decode_histogram(encoded: bytes) -> HdrHistogram:
    """Rebuild a histogram from :meth:`HdrHistogram.encode` output."""
    histogram = new_histogram()
    histogram.decode_and_add(encoded)
    return histogram

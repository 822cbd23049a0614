"""The scenario panels of ``LoadResult.plot()``: latency per step, and checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes


def draw_steps(steps: Axes, checks: Axes,
               tables: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
               names: Sequence[str], colors: Sequence[str]) -> None:
    """p50 (bar) and p99 (tick) of each step; passes and fails of each check.

    ``tables`` holds each run's ``(steps, checks)`` frames, ``colors`` the theme's.
    """
    width = 0.8 / len(tables)
    for i, ((frame, table), name) in enumerate(zip(tables, names, strict=True)):
        color, prefix = colors[i % len(colors)], f"{name} " if name else ""
        x = np.arange(len(frame)) + i * width
        steps.bar(x, frame["p50"] * 1e3, width=width, align="edge", color=color,
                  label=f"{prefix}p50")
        steps.scatter(x + width / 2, frame["p99"] * 1e3, marker="_", s=200, color=color,
                      label=f"{prefix}p99")
        steps.set_xticks(np.arange(len(frame)) + 0.4, list(frame.index), rotation=20,
                         ha="right")
        y = np.arange(len(table)) + i * width
        checks.barh(y, table["passes"], height=width, align="edge", color=color,
                    label=f"{prefix}passes")
        checks.barh(y, table["fails"], left=table["passes"], height=width, align="edge",
                    color=color, alpha=0.4, hatch="//", label=f"{prefix}fails")
        checks.set_yticks(np.arange(len(table)) + 0.4, list(table.index))
    steps.set(ylabel="ms", title="Latency per step (successful)")
    checks.set(xlabel="count", title="Checks")

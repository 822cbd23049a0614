"""benchmarks/RESULTS.md: one section per benchmark, each rewritten by its own script."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version
from pathlib import Path

import nbstream

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    """One line describing where the figures were measured."""
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"websockets {version('websockets')}, nbstream {nbstream.__version__}")


def write_section(title: str, body: str) -> None:
    """Replace the section headed ``## {title}`` with ``body`` (or append it)."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    header = f"## {title}"
    section = f"{header}\n\n{body.strip()}\n"
    if header in text:
        before, _, after = text.partition(header)
        rest = after.split("\n## ", 1)
        text = before + section + ("\n## " + rest[1] if len(rest) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)

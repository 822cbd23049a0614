"""Small HTML pieces the ipywidgets-based views draw with: tables, figures, sparklines.

Everything is escaped here, once, so that a session id or a message text can never
inject markup into a notebook.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

STYLE = (
    "<style>"
    ".nbs-table{border-collapse:collapse;font-size:12px}"
    ".nbs-table td,.nbs-table th{padding:1px 8px;text-align:right;white-space:nowrap}"
    ".nbs-table th{border-bottom:1px solid var(--jp-border-color1,#d0d7de)}"
    ".nbs-table td:first-child,.nbs-table th:first-child{text-align:left}"
    ".nbs-figures{display:flex;flex-wrap:wrap;gap:18px;font-size:12px}"
    ".nbs-figure b{display:block;font-size:18px}"
    ".nbs-ok{color:#157937}.nbs-bad{color:#d01727}"
    "body[data-jp-theme-light='false'] .nbs-ok,body.vscode-dark .nbs-ok{color:#1fb250}"
    "body[data-jp-theme-light='false'] .nbs-bad,body.vscode-dark .nbs-bad{color:#f0747f}"
    "</style>"
)
"""Styles shared by the views; put once at the top of a view's HTML. The ok/bad colours
reach 4.5:1 contrast on JupyterLab's light and dark backgrounds (as in flow.css)."""


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], css: str = "nbs-table") -> str:
    """An HTML table with escaped cells; ``None`` cells show as an em dash."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{'—' if v is None else escape(str(v))}</td>" for v in row)
        + "</tr>"
        for row in rows
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def figures(items: Iterable[tuple[str, str]], css: str = "nbs-figures") -> str:
    """Big numbers with a caption each, side by side: ``[("msg/s", "1,234"), ...]``."""
    cells = "".join(
        f'<div class="nbs-figure"><b>{escape(value)}</b>{escape(caption)}</div>'
        for caption, value in items
    )
    return f'<div class="{css}">{cells}</div>'


def sparkline(values: Sequence[float], width: int = 220, height: int = 36,
              colour: str = "#1f6feb", label: str = "") -> str:
    """A small inline SVG line of ``values`` (scaled to their maximum), with a label."""
    top = max(values, default=0.0) or 1.0
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in enumerate(values)
    )
    caption = f"{escape(label)} (max {top:,.4g})" if label else ""
    return (
        f'<div class="nbs-spark"><svg width="{width}" height="{height}">'
        f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
        f'</svg><div style="font-size:11px">{caption}</div></div>'
    )

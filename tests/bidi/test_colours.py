"""FlowView colours every bidi envelope by family, legibly (WCAG AA for white tag text)."""

from __future__ import annotations

import re
from pathlib import Path

import nbstream.views
from nbstream.strands.wire import INPUT_TYPES
from tests.bidi.test_wire import OUTPUTS

FLOW_JS = Path(nbstream.views.__file__).with_name("flow.js").read_text()


def families() -> list[tuple[str, str]]:
    block = re.search(r"const BIDI_FAMILIES = \[(.*?)\];", FLOW_JS, re.DOTALL)
    assert block, "flow.js lost its BIDI_FAMILIES block"
    return re.findall(r'\["([a-z_]+)", "(#[0-9a-f]{6})"\]', block.group(1))


def contrast_with_white(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    return 1.05 / (luminance + 0.05)


def test_every_family_colour_keeps_white_text_legible() -> None:
    found = families()
    assert len(found) >= 10
    for prefix, colour in found:
        assert contrast_with_white(colour) >= 4.5, (prefix, colour)


def test_every_bidi_envelope_type_has_a_family() -> None:
    prefixes = [prefix for prefix, _ in families()]
    kinds = {kind for _, kind, _ in OUTPUTS} | set(INPUT_TYPES) | {
        "tool_stream", "tool_result_message"}
    for kind in kinds:
        assert any(kind.startswith(p) for p in prefixes), kind

"""FlowView colours every bidi envelope by family, with a tone of its palette (whose
contrast the browser test measures in both themes)."""

from __future__ import annotations

import re
from pathlib import Path

import nbstream.views
from nbstream.strands.wire import CLIENT_TYPES
from tests.bidi.test_wire import OUTPUTS

VIEWS = Path(nbstream.views.__file__).parent
FLOW_JS = (VIEWS / "flow.js").read_text()
FLOW_CSS = (VIEWS / "flow.css").read_text()


def families() -> list[tuple[str, str]]:
    block = re.search(r"const BIDI_FAMILIES = \[(.*?)\];", FLOW_JS, re.DOTALL)
    assert block, "flow.js lost its BIDI_FAMILIES block"
    return re.findall(r'\["([a-z_]+)", "([a-z_0-9]+)"\]', block.group(1))


def test_every_family_uses_a_tone_both_themes_define() -> None:
    found = families()
    assert len(found) >= 10
    for prefix, tone in found:
        assert FLOW_CSS.count(f"--nbs-{tone}:") >= 2, (prefix, tone)  # light and dark


def test_every_bidi_envelope_type_has_a_family() -> None:
    prefixes = [prefix for prefix, _ in families()]
    kinds = {kind for _, kind, _ in OUTPUTS} | set(CLIENT_TYPES) | {
        "tool_stream", "tool_result_message"}
    for kind in kinds:
        assert any(kind.startswith(p) for p in prefixes), kind

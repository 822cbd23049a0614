"""nbstream never pays for the Strands SDK unless asked, and says how to get it."""

from __future__ import annotations

import subprocess
import sys

import pytest

import nbstream.strands


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=60)


def test_importing_nbstream_does_not_import_the_sdk() -> None:
    result = run("import sys, nbstream, nbstream.strands; "
                 "assert 'strands' not in sys.modules, 'imported too early'; "
                 "nbstream.strands.ScriptedBidiModel; assert 'strands' in sys.modules")
    assert result.returncode == 0, result.stderr


def test_without_the_sdk_the_error_says_what_to_install() -> None:
    result = run("import sys; sys.modules['strands'] = None; import nbstream.strands; "
                 "nbstream.strands.WebSocketInput")
    assert "pip install 'nbstream[strands]'" in result.stderr


def test_every_public_name_resolves_and_unknown_ones_do_not() -> None:
    for name in nbstream.strands.__all__:
        assert getattr(nbstream.strands, name).__name__ == name
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        nbstream.strands.Nope  # noqa: B018 - the lookup is the test

"""websockets internals are used in one module only, on versions checked to work."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

from nbstream import wsinternals

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("release", ["14.0", "15.0.1", "17.4"])
def test_supported_releases_pass(release: str) -> None:
    wsinternals.check_version(release)


@pytest.mark.parametrize("release", ["13.1", "18.0", "nonsense"])
def test_an_unchecked_release_is_refused_loudly(release: str) -> None:
    with pytest.raises(ImportError, match="websockets"):
        wsinternals.check_version(release)


def test_the_installed_release_is_supported() -> None:
    wsinternals.check_version(version("websockets"))


FORBIDDEN = re.compile(r"\bws\.(transport|protocol)\b|\.transport\.abort\(|_enter_task|"
                       r"_leave_task|asyncio\.tasks\._")


def test_nothing_else_reaches_into_websockets_or_asyncio_internals() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in (ROOT / "nbstream").rglob("*.py") if path.name != "wsinternals.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert offenders == []

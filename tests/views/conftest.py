"""Views under test talk to a recording comm: no browser, no kernel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from nbstream.views.commlog import CommLog, record_comms
from tests.conftest import TIMEOUT


@pytest.fixture
def comms() -> Iterator[CommLog]:
    """Every widget created in the test records what it would send to the browser."""
    with record_comms() as log:
        yield log


async def eventually(check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait until ``check()`` is true (views refresh on their own schedule)."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)

"""The plain (synchronous) twins of the client's async methods, for notebook cells
and scripts: each runs its twin on the client's loop and waits (nbstream.runtime)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from nbstream import runtime
from nbstream.client.messages import NO_DATA
from nbstream.protocol import Message, StreamClosed
from nbstream.protocol.replies import Until

if TYPE_CHECKING:
    from typing import Self



class SyncTwins:
    """``send``, ``recv``, ``chat``, ``request``, ``close``, iteration and ``with``."""

    url: str
    _shown_url: str
    _loop: asyncio.AbstractEventLoop
    _closed: StreamClosed | None

    if TYPE_CHECKING:
        @property
        def session_id(self) -> str | None: ...

        async def asend(self, item: Any, data: Any = NO_DATA) -> Message: ...

        async def arecv(self, timeout: float | None = None) -> Message: ...

        async def achat(self, text: str, timeout: float | None = None,
                        **data: Any) -> list[Message]: ...

        async def arequest(self, value: Any, until: Until | None = None,
                           timeout: float | None = None) -> list[Message]: ...

        async def aclose(self) -> None: ...

    def send(self, item: Any, data: Any = NO_DATA) -> Message:
        """Sync twin of :meth:`asend`."""
        return runtime.run_sync(self.asend(item, data), self._loop)

    def recv(self, timeout: float | None = None) -> Message:
        """Sync twin of :meth:`arecv`."""
        return runtime.run_sync(self.arecv(timeout), self._loop)

    def chat(self, text: str, timeout: float | None = None, **data: Any) -> list[Message]:
        """Sync twin of :meth:`achat`: ``client.chat("what is 6*7?")``."""
        return runtime.run_sync(self.achat(text, timeout, **data), self._loop)

    def request(self, value: Any, until: Until | None = None,
                timeout: float | None = None) -> list[Message]:
        """Sync twin of :meth:`arequest`."""
        return runtime.run_sync(self.arequest(value, until, timeout), self._loop)

    def close(self) -> None:
        """Sync twin of :meth:`aclose`."""
        if not self._loop.is_closed():
            runtime.run_sync(self.aclose(), self._loop)

    def _close_for_all(self) -> str | None:
        if self._closed is not None or self._loop.is_closed():
            return None
        self.close()
        return f"client of {self._shown_url} (session {self.session_id}): closed"

    def __iter__(self) -> Iterator[Message]:
        while True:
            try:
                yield self.recv()
            except StreamClosed:
                return

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

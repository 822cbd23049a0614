"""Every use of websockets beyond its documented asyncio API, fenced in one module.

nbstream writes the frames of one loop turn in a single system call (the Sans-I/O
``protocol`` object frames them, the ``transport`` takes them together), reads the
transport's buffer to detect slow consumers, aborts TCP connections to simulate or
end dead peers, and reads which side closed first. Those are attributes of
websockets' asyncio ``Connection`` that its documentation does not promise. This
module checks the installed version at import and refuses unknown ones loudly
(``tests/test_wsinternals.py`` proves it still works on the supported ones).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import version
from typing import Any

from websockets.asyncio.connection import Connection
from websockets.protocol import State

from nbstream.wire.base import Encoded

SUPPORTED_MAJOR = range(14, 18)
"""websockets major versions whose internals this module was checked against."""


def check_version(version: str) -> None:
    """Raise ImportError unless ``version`` is a websockets release known to work."""
    try:
        major = int(version.split(".", 1)[0])
    except ValueError:
        raise ImportError(f"cannot read the websockets version {version!r}") from None
    if major not in SUPPORTED_MAJOR:
        raise ImportError(
            f"nbstream supports websockets {SUPPORTED_MAJOR.start} to "
            f"{SUPPORTED_MAJOR.stop - 1}.x, not {version}: nbstream/wsinternals.py uses "
            "internals of websockets that must be checked against each major release"
        )


check_version(version("websockets"))


def write_now(ws: Connection, frames: Iterable[Encoded]) -> bool:
    """Frame messages and write them in one system call.

    Returns False (writing nothing) when the connection is no longer open: the
    receive loop then sees the close.
    """
    protocol = ws.protocol
    if protocol.state is not State.OPEN or ws.transport.is_closing():
        return False
    for frame in frames:
        if frame.text:
            protocol.send_text(frame.data)
        else:
            protocol.send_binary(frame.data)
    ws.transport.write(b"".join(protocol.data_to_send()))
    return True


def write_buffer_size(ws: Connection) -> int:
    """Bytes the transport holds that the peer has not taken yet."""
    size: int = ws.transport.get_write_buffer_size()
    return size


def buffer_size_reader(ws: Connection) -> Callable[[], int]:
    """A function that says what :func:`write_buffer_size` says, without the call chain
    (an outbox asks before every frame)."""
    reader: Callable[[], int] = ws.transport.get_write_buffer_size
    return reader


def write_limit(ws: Connection) -> int:
    """The transport's high-water mark (websockets' ``write_limit``)."""
    limit: int = ws.transport.get_write_buffer_limits()[1]
    return limit


def abort(ws: Connection) -> None:
    """Drop the TCP connection without a close frame, as a network failure would."""
    ws.transport.abort()


def close_code(ws: Connection) -> int:
    """The close code of whichever side closed first; 1006 if TCP just died."""
    protocol: Any = ws.protocol
    sent, rcvd = protocol.close_sent, protocol.close_rcvd
    if sent is not None and (rcvd is None or protocol.close_rcvd_then_sent is False):
        code: int = sent.code
        return code
    if rcvd is not None:
        code = rcvd.code
        return code
    return 1006


def closed_by_peer(ws: Connection) -> bool:
    """True when the peer sent its close frame first."""
    protocol: Any = ws.protocol
    return protocol.close_rcvd is not None and protocol.close_rcvd_then_sent is not False

"""Which request a server message answers, and whether it ends that request's reply.

The one place where ``reply_to`` is read: the client's ``chat``, its resume
bookkeeping and the load tester all ask :func:`reply_step`; where a request's reply
ends, for any protocol, both ask :func:`request_step`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from nbstream.protocol.envelope import Message, MessageType
from nbstream.protocol.errors import ErrorCode


class ReplyStep(enum.Enum):
    """What one message means for the reply to a request."""

    PART = "part"
    """Part of the reply (streamed content), or a message that names no request."""
    OTHER = "other"
    """Part of the reply to another request."""
    END = "end"
    """The reply is complete: ``end`` (or the ``pong`` answering a ``ping``)."""
    FAILED = "failed"
    """The reply ended with an error: the request's own, or one that ends every reply."""


# Members read once: on Python 3.11 reading one through its class costs 70 ns
# (EnumType.__getattr__), and the functions below run for every reply message.
_PART, _OTHER, _END, _FAILED = ReplyStep.PART, ReplyStep.OTHER, ReplyStep.END, ReplyStep.FAILED
_ERROR, _PONG, _END_TYPE = MessageType.ERROR, MessageType.PONG, MessageType.END


def reply_to(message: Message) -> str | None:
    """The id of the client message that ``message`` answers, if it names one.

    ``end`` and streamed messages carry ``data.reply_to``, ``error`` carries
    ``data.details.reply_to``, ``pong`` carries ``data.ping_id``.
    """
    data = message.data
    if not isinstance(data, dict):
        return None
    if message.type == _ERROR:
        details = data.get("details")
        ref = details.get("reply_to") if isinstance(details, dict) else None
    elif message.type == _PONG:
        ref = data.get("ping_id")
    else:
        ref = data.get("reply_to")
    return ref if isinstance(ref, str) else None


def reply_step(message: Message, request_id: str | None) -> ReplyStep:
    """Classify ``message`` for the reply to the request ``request_id``.

    An error that names no request ends the reply when it is unrecoverable (the
    connection is about to close) or says the reply could not be recovered.
    """
    kind = message.type
    ref = reply_to(message)
    if ref is not None and ref != request_id:
        return _OTHER
    if kind == _END_TYPE or kind == _PONG:
        return _END
    if kind == _ERROR:
        data = message.data
        if ref is not None or not isinstance(data, dict):
            return _FAILED
        if data.get("recoverable") is False or data.get("code") == ErrorCode.RECOVERY_FAILED:
            return _FAILED
    return _PART


Until = Callable[[Message], bool]
"""Which reply ends a request (``request(value, until=...)``)."""


def request_step(message: Message, request_id: str | None, until: Until | None,
                 ends_replies: bool) -> ReplyStep:
    """Classify ``message`` for a request sent with ``request(value, until=until)``.

    With ``until``, the first message for which it is true ends the reply. Without it,
    a protocol that ends replies (``ends_replies``: nbstream's ``end``) decides with
    :func:`reply_step`; any other protocol's reply is its first message.
    """
    if until is not None:
        return _END if until(message) else _PART
    if ends_replies:
        return reply_step(message, request_id)
    return _END


def first_frame_ends(ends_replies: bool, in_band_heartbeat: bool) -> bool:
    """Whether the first frame back ends every request sent without ``until``, whatever it
    holds: the protocol has no reply ends (:func:`request_step`) and no in-band pings."""
    return not ends_replies and not in_band_heartbeat

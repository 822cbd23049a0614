"""nbstream's protocol core: envelope, errors, batching, history, limits, heartbeat.

Nothing here does I/O, starts a task or reads a clock: callers pass ``now`` in. The
asyncio server and client in :mod:`nbstream.server` and :mod:`nbstream.client` are
thin shells around these pieces.
"""

from nbstream.protocol.admission import Admission
from nbstream.protocol.backoff import Backoff
from nbstream.protocol.batching import Batcher
from nbstream.protocol.envelope import (
    CLIENT_TYPES,
    SUBPROTOCOL,
    Message,
    MessageType,
    encode,
    encode_batch,
    new_id,
    parse_client_frame,
    parse_server_frame,
    utc_timestamp,
)
from nbstream.protocol.errors import CloseCode, ErrorCode, Severity, StreamClosed, StreamError
from nbstream.protocol.heartbeat import Heartbeat, HeartbeatAction
from nbstream.protocol.history import BoundedHistory
from nbstream.protocol.ratelimit import TokenBucket
from nbstream.protocol.resume import Position, RecentIds, ResumePlan, new_epoch, plan_resume
from nbstream.protocol.session import Session

__all__ = [
    "CLIENT_TYPES",
    "SUBPROTOCOL",
    "Admission",
    "Backoff",
    "Batcher",
    "BoundedHistory",
    "CloseCode",
    "ErrorCode",
    "Heartbeat",
    "HeartbeatAction",
    "Message",
    "MessageType",
    "Position",
    "RecentIds",
    "ResumePlan",
    "Session",
    "Severity",
    "StreamClosed",
    "StreamError",
    "TokenBucket",
    "encode",
    "encode_batch",
    "new_epoch",
    "new_id",
    "parse_client_frame",
    "parse_server_frame",
    "plan_resume",
    "utc_timestamp",
]

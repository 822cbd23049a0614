"""The protocol seam: how frames become messages and messages become frames.

A :class:`WireProtocol` is everything the server, the client, the load tester and
the views need to know about one way of talking over a WebSocket; none of them looks
at a frame's content any other way. nbstream's envelope (:mod:`nbstream.wire.envelope`)
is one implementation; ``json``, ``text`` and ``raw`` (for servers nbstream did not
write) are the others, and a test defines its own. A protocol does no I/O, keeps no
per-connection state and reads no clock: one instance serves every connection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from nbstream.protocol import Message, StreamError
from nbstream.protocol.connection import Incoming


class Encoded(msgspec.Struct, frozen=True, gc=False):
    """One outgoing WebSocket message: its payload and whether it is a text frame.

    A C struct (built in a sixth of a NamedTuple's time: one is made per message
    sent); ``data, text = encoded`` unpacks it as before.
    """

    data: bytes
    text: bool

    def __iter__(self) -> Iterator[Any]:
        return iter((self.data, self.text))


class WireProtocol(ABC):
    """How one protocol frames messages. Subclass it to speak another protocol.

    Class attributes say what the protocol has: an ``end`` after each reply, in-band
    heartbeats (pings as messages rather than WebSocket pings), a welcome and resume
    step, and the WebSocket subprotocol that announces it.
    """

    name: str = ""
    """What ``protocol=`` calls it."""
    subprotocol: str | None = None
    """Offered by clients and chosen by servers of this protocol, if it has one."""
    in_band_heartbeat: bool = False
    """Pings and pongs are messages (True) or WebSocket control frames (False)."""
    resumable: bool = False
    """Sessions have positions, a welcome and a resume step."""
    ends_replies: bool = False
    """The server marks the end of each reply with :meth:`end_of_reply`."""
    sends_str_as_text: bool = False
    """:meth:`frame` of any str ``s`` is ``Encoded(s.encode(), True)``: its text frame
    as given (the load tester then formats and frames a payload in one step)."""
    control_types: Mapping[str, Incoming] = {}
    """Message types that are not requests, and what they are (what :meth:`incoming`
    says; a server reads it directly on its hot path)."""

    # -- a server reading what a client sent ------------------------------------------------

    @abstractmethod
    def decode_request(self, frame: str | bytes) -> Message | StreamError:
        """The message in one frame from a client, or the error to answer it with."""

    def incoming(self, message: Message) -> Incoming:
        """What the server does with ``message`` (see :attr:`control_types`)."""
        return self.control_types.get(message.type, Incoming.REQUEST)

    # -- either side writing -----------------------------------------------------------------

    @abstractmethod
    def to_message(self, item: Any) -> Message:
        """The message for what a handler yielded or a client sends.

        Raises:
            TypeError: naming what this protocol can send instead.
        """

    @abstractmethod
    def encode(self, message: Message) -> Encoded:
        """The frame that carries ``message``."""

    def frame(self, item: Any) -> Encoded:
        """The frame that carries what a client sends: ``encode(to_message(item))``,
        without building the message where the protocol can (a load test's data path).

        Raises:
            TypeError: as :meth:`to_message`.
        """
        return self.encode(self.to_message(item))

    @property
    def text_as_bytes(self) -> bool:
        """Whether a client may read text frames as UTF-8 bytes (no str made): only a
        protocol that never needs to tell text from binary frames."""
        return False

    def in_stream(self, message: Message) -> bool:
        """Whether ``message`` takes a position in a resumable session's stream."""
        return True

    # -- a server ending replies and reporting errors ---------------------------------------

    def end_of_reply(self, request: Message) -> Message | None:
        """The message that ends the reply to ``request``, or None if nothing does."""
        return None

    def error_message(self, error: StreamError) -> Message | None:
        """The message that reports ``error`` in band, or None (close codes only)."""
        return None

    def shutdown_notice(self, grace_period: float) -> Message | None:
        """The message that tells a client the server is stopping, if the protocol has one."""
        return None

    # -- a client reading what a server sent --------------------------------------------------

    @abstractmethod
    def decode_replies(self, frame: str | bytes) -> list[Message]:
        """The messages in one frame from a server.

        Raises:
            StreamError: PROTOCOL_ERROR when the frame breaks this protocol (the
                server's fault, not the caller's).
        """

    # -- in-band heartbeats (``in_band_heartbeat`` only) ----------------------------------

    def ping(self, ping_id: str) -> Message:
        """The ping message with id ``ping_id``."""
        raise NotImplementedError(f"the {self.name} protocol has no in-band ping")

    def pong(self, ping: Message) -> Message:
        """The pong that answers ``ping``."""
        raise NotImplementedError(f"the {self.name} protocol has no in-band pong")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

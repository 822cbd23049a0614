"""What a client's ``send`` and ``chat`` put on the wire, for any protocol.

Shared by :class:`nbstream.Client` and the load tester's lean client, so both accept
the same values and refuse the same ones with the same words.
"""

from __future__ import annotations

from typing import Any

from nbstream.protocol import Message, MessageType
from nbstream.wire import EnvelopeProtocol, WireProtocol

NO_DATA: Any = object()
"""``send(type)`` without data (an envelope whose data is null)."""


def message_for(protocol: WireProtocol, item: Any, data: Any = NO_DATA) -> Message:
    """The message for ``send(type, data)`` (nbstream) or ``send(value)`` (any protocol).

    Raises:
        TypeError: for ``send(type, data)`` with another protocol, or a value the
            protocol cannot send.
    """
    envelope = isinstance(protocol, EnvelopeProtocol)
    if data is not NO_DATA or (envelope and isinstance(item, str)):
        if not envelope:
            raise TypeError(f"send(type, data) is the nbstream protocol's form; with "
                            f"protocol={protocol.name!r} send one value: "
                            "client.send({...}), client.send('text') or bytes")
        return Message(str(item), None if data is NO_DATA else data)
    return protocol.to_message(item)


def chat_message(protocol: WireProtocol, text: Any, data: dict[str, Any]) -> Message:
    """The ``chat`` message of ``chat(text, **data)``.

    Raises:
        TypeError: when ``text`` is not a str, or the protocol has no chat.
    """
    if not isinstance(text, str):
        raise TypeError(f"chat(text) takes a str, got {type(text).__name__}: "
                        f"chat(str(value)) sends its text")
    if not protocol.ends_replies:
        raise TypeError(f"chat() is the nbstream protocol's; with protocol="
                        f"{protocol.name!r} use request(value)")
    return Message(MessageType.CHAT, {**data, "text": text})

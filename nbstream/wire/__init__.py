"""Wire protocols: ``protocol="nbstream"`` (the default), ``"json"``, ``"text"``, ``"raw"``.

See :class:`nbstream.wire.WireProtocol` to speak another one.
"""

from __future__ import annotations

from nbstream.protocol.connection import Incoming
from nbstream.wire.base import Encoded, WireProtocol
from nbstream.wire.envelope import EnvelopeProtocol
from nbstream.wire.plain import JsonProtocol, RawProtocol, TextProtocol, TypeKey

ProtocolSpec = str | WireProtocol
"""A protocol's name, or a protocol instance."""

NAMES = ("nbstream", "json", "text", "raw")


def create(spec: ProtocolSpec = "nbstream", *, type_key: TypeKey | None = None
           ) -> WireProtocol:
    """The protocol named ``spec`` (``type_key`` configures ``"json"``), or ``spec`` itself.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if isinstance(spec, WireProtocol):
        return spec
    if spec == "nbstream":
        return EnvelopeProtocol()
    if spec == "json":
        return JsonProtocol(type_key if type_key is not None else "type")
    if spec == "text":
        return TextProtocol()
    if spec == "raw":
        return RawProtocol()
    raise ValueError(f"unknown protocol {spec!r}; use one of {', '.join(NAMES)} "
                     "or a nbstream.wire.WireProtocol")


__all__ = [
    "NAMES",
    "Encoded",
    "EnvelopeProtocol",
    "Incoming",
    "JsonProtocol",
    "ProtocolSpec",
    "RawProtocol",
    "TextProtocol",
    "TypeKey",
    "WireProtocol",
    "create",
]

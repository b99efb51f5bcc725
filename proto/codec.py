"""Bytes on the wire: msgpack via msgspec for events; plain text for the kill switch so
that any NATS client (`nats pub '$KV.control.trading_enabled' false`) can flip it."""

from __future__ import annotations

from functools import cache
from typing import TypeVar

import msgspec

from proto import events as ev
from proto.amounts import check

E = TypeVar("E", bound=ev.Event)

_encoder = msgspec.msgpack.Encoder()
encode = _encoder.encode

_TRUE = {b"true", b"1", b"on", b"yes", b"enabled"}
_FALSE = {b"false", b"0", b"off", b"no", b"disabled"}


@cache
def _decoder(kind: type) -> msgspec.msgpack.Decoder:
    return msgspec.msgpack.Decoder(kind)


def decode(data: bytes, kind: type[E]) -> E:
    """Decode one event of `kind`; raises msgspec.DecodeError/ValidationError naming the field, or
    proto.amounts.AmountError naming the event type, field and value of a number it may not carry."""
    event = _decoder(kind).decode(data)
    check(event)
    return event


def decode_any(data: bytes) -> ev.Event:
    event = _decoder(ev.ANY_EVENT).decode(data)
    check(event)
    return event


def encode_trading_enabled(enabled: bool) -> bytes:
    return b"true" if enabled else b"false"


def decode_trading_enabled(data: bytes) -> bool:
    """`true`/`false` (also 1/0, on/off, yes/no), any case, surrounding blanks and quotes ignored."""
    word = data.strip().strip(b"\"'").lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"trading_enabled must be true or false, got {data[:64]!r}")

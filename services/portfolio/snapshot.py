"""A ledger snapshot: the portfolio's whole state after the fills and funding stored up to a
point, so that a restart reads it plus what came after, not the whole history.

Exact: every sum travels as its decimal string (exponent included), a position's cost basis as
it is (not re-derived from the reported average price), so a restored portfolio carries on with
the same digits as one that never stopped."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from services.portfolio.roundtrips import RunningState

Key = tuple[str, str, str]  # client, venue, symbol


class PositionState(msgspec.Struct, frozen=True, array_like=True):
    client: str
    venue: str
    symbol: str
    qty: Decimal
    cost: Decimal
    realized_pnl: Decimal
    fees: Decimal
    funding: Decimal
    last_fill_price: Decimal  # the mark while the market has no price


class LedgerState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    positions: list[PositionState]
    running: list[tuple[tuple[str, str, str], RunningState]]  # the running round trips
    funded: list[tuple[str, str, int]]  # (venue, symbol, newest funding time booked)


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(LedgerState).decode


def encode(state: LedgerState) -> bytes:
    return _encode(state)


def decode(data: bytes) -> LedgerState:
    return _decode(data)

"""Perpetual funding from Binance USDⓈ-M, as FundingRateSettled events.

Two sources:
- the websocket `<symbol>@markPrice@1s` stream: each `markPriceUpdate` carries the mark price `p`,
  the funding rate `r` and the next funding time `T`. The rate paid at `T` is the one the last
  update before `T` moves on shows, so `FundingSettler` settles a funding time when the next
  update names a later one, at the mark price that last update had;
- the rate history: REST `/fapi/v1/fundingRate` (`parse_funding_history`, with the mark price), or
  a CSV of it (services.ingest.files.read_funding), one row per funding time and no mark price
  (the portfolio then marks at its newest price).

Funding times are floored to the second: the history carries Binance's jitter of a few ms
(08:00:00.017), the websocket the exact time, and both must name the same funding."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple

import msgspec

from proto.amounts import MAX_RATE
from proto.events import FundingRateSettled

MS = 1_000_000
S = 1_000_000_000
# The last update before a funding time must be this close to it: after a gap in the stream (a
# reconnect across the funding time) the rate it showed may not be the one paid, so none is booked.
MAX_SETTLE_GAP_MS = 60_000

class MarkPriceUpdate(NamedTuple):
    """One `markPriceUpdate` of the websocket, as read (not an event: only its settlement is one)."""

    venue: str
    symbol: str
    mark_price: Decimal
    rate: Decimal
    next_funding_ms: int
    event_ms: int


def funding_id(venue: str, symbol: str, funding_ns: int) -> str:
    return f"{venue}.{symbol}.funding.{funding_ns}"


def settled(venue: str, symbol: str, funding_ms: int, rate: Decimal, mark_price: Decimal | None) -> FundingRateSettled:
    """The event for one funding time; the rate checked against the wire's cap (a bad file names it)."""
    if not (rate.is_finite() and abs(rate) <= MAX_RATE):
        raise ValueError(f"funding rate {rate} of {venue}.{symbol} at {funding_ms} ms is not a rate "
                         f"(a finite fraction of at most {MAX_RATE})")
    ts = funding_ms * MS // S * S
    return FundingRateSettled(id=funding_id(venue, symbol, ts), ts_event=ts, venue=venue, symbol=symbol, rate=rate,
                              mark_price=mark_price)


def mark_price_update(data: dict[str, Any], venue: str) -> MarkPriceUpdate:
    """A `markPriceUpdate` payload (KeyError / ValueError on a missing or bad field)."""
    mark, rate = Decimal(data["p"]), Decimal(data["r"])
    if not (mark.is_finite() and mark > 0):
        raise ValueError(f"mark price {data['p']!r} is not a positive number")
    if not rate.is_finite():
        raise ValueError(f"funding rate {data['r']!r} is not a finite number")
    return MarkPriceUpdate(venue, data["s"], mark, rate, int(data["T"]), int(data["E"]))


class FundingSettler:
    """Pure: markPrice updates in, a FundingRateSettled out when a funding time has passed."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], MarkPriceUpdate] = {}  # one per market: bounded by the markets
        self.unsettled = 0  # funding times passed with no update close enough before them

    def on_update(self, update: MarkPriceUpdate) -> FundingRateSettled | None:
        key = (update.venue, update.symbol)
        last = self._last.get(key)
        if last is not None and update.event_ms < last.event_ms:
            return None  # older than what we have (a reconnect's overlap)
        self._last[key] = update
        if last is None or update.next_funding_ms <= last.next_funding_ms:
            return None
        if last.next_funding_ms - last.event_ms > MAX_SETTLE_GAP_MS:
            self.unsettled += 1
            return None
        return settled(last.venue, last.symbol, last.next_funding_ms, last.rate, last.mark_price)


def parse_funding_history(raw: str | bytes, venue: str) -> list[FundingRateSettled]:
    """The REST `GET /fapi/v1/fundingRate` answer: `[{"symbol", "fundingTime", "fundingRate",
    "markPrice"}, ...]`; an empty `markPrice` (older history) leaves the mark to the portfolio."""
    try:
        rows = msgspec.json.decode(raw, type=list[dict[str, Any]])
    except msgspec.DecodeError as exc:  # ValidationError included: not a list of objects
        raise ValueError(f"malformed Binance funding history ({exc}): {raw[:200]!r}") from None
    out = []
    for n, row in enumerate(rows):
        try:
            mark = Decimal(row["markPrice"]) if row.get("markPrice") else None
            if mark is not None and not (mark.is_finite() and mark > 0):
                raise ValueError(f"mark price {row['markPrice']!r} is not a positive number")
            out.append(settled(venue, row["symbol"], int(row["fundingTime"]), Decimal(row["fundingRate"]), mark))
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise ValueError(f"Binance funding history row {n}: {type(exc).__name__}: {exc}: {row!r}") from None
    return out

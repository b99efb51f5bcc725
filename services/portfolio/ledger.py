"""The book of record as people read it: each position with the price it is marked at and how
fresh that price is, and per client the same figures aggregated per symbol across venues, fees
and funding per currency, gross and net exposure.

A mark is the newest price in KV `prices`: `fresh` when it is at most `max_price_age_s` old on the
service's clock, `stale` when older, `missing` when the market has no price yet (then the last
fill's price stands in). A stale or missing mark is reported as such, and its market is listed
as `unmarked` in the client's figures: never silently taken for a current price. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from proto.events import EquitySnapshot, PriceSnapshot
from proto.subjects import price_key
from services.portfolio.positions import ZERO, Position, add, multiply

Key = tuple[str, str, str]  # client, venue, symbol
MarkStatus = Literal["fresh", "stale", "missing"]

# Quote currencies a symbol may end in, longest first ("FDUSD" before "USD"): fees and funding
# are in the quote currency of their market.
QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "TRY", "BTC", "ETH", "BNB")


def quote_currency(symbol: str) -> str:
    """The quote currency a symbol ends in; the symbol itself when none is known."""
    return next((q for q in QUOTES if symbol.endswith(q) and len(symbol) > len(q)), symbol)


class Marked(NamedTuple):
    key: Key
    position: Position
    mark: Decimal
    status: MarkStatus
    age_s: float | None  # of the price in KV, None when missing


def mark(key: Key, prices: Mapping[tuple[str, str], PriceSnapshot], last_fill_price: Decimal, now_ns: int,
         max_age_ns: int) -> tuple[Decimal, MarkStatus, float | None]:
    snapshot = prices.get((key[1], key[2]))
    if snapshot is None:
        return last_fill_price, "missing", None
    age_ns = now_ns - snapshot.ts_event
    return snapshot.price, "fresh" if age_ns <= max_age_ns else "stale", age_ns / 1e9


def _sum(values: Iterable[Decimal]) -> Decimal:
    total = ZERO
    for v in values:
        total = add(total, v)
    return total


def equity_snapshot(client: str, ts_ns: int, capital: Decimal, equity: Decimal, marked: list[Marked]) -> EquitySnapshot:
    """One client's figures over every venue. `equity` is the portfolio's own (capital + realized
    - fees - funding + unrealized at these marks)."""
    values = [multiply(m.position.qty, m.mark) for m in marked]
    return EquitySnapshot(
        id=f"{client}.{ts_ns}", ts_event=ts_ns, client=client, capital=capital,
        realized_pnl=_sum(m.position.net_realized for m in marked),
        unrealized_pnl=_sum(m.position.unrealized(m.mark) for m in marked),
        fees=_sum(m.position.fees for m in marked), funding=_sum(m.position.funding for m in marked),
        equity=equity, gross_exposure=_sum(v.copy_abs() for v in values), net_exposure=_sum(values),
        unmarked=tuple(sorted({price_key(m.key[1], m.key[2]) for m in marked
                               if m.position.qty and m.status != "fresh"})))


def client_figures(snapshot: EquitySnapshot, marked: list[Marked]) -> dict[str, Any]:
    """The snapshot, with fees and funding per currency and the positions aggregated per symbol
    across venues (JSON-ready: Decimals as strings)."""
    fees: dict[str, Decimal] = {}
    funding: dict[str, Decimal] = {}
    by_symbol: dict[str, dict[str, Any]] = {}
    for m in marked:
        _, venue, symbol = m.key
        p = m.position
        quote = quote_currency(symbol)
        fees[quote] = add(fees.get(quote, ZERO), p.fees)
        if p.funding:
            funding[quote] = add(funding.get(quote, ZERO), p.funding)
        row = by_symbol.setdefault(symbol, {"qty": ZERO, "realized_pnl": ZERO, "unrealized_pnl": ZERO,
                                            "fees": ZERO, "funding": ZERO, "venues": []})
        row["qty"] = add(row["qty"], p.qty)
        row["realized_pnl"] = add(row["realized_pnl"], p.net_realized)
        row["unrealized_pnl"] = add(row["unrealized_pnl"], p.unrealized(m.mark))
        row["fees"] = add(row["fees"], p.fees)
        row["funding"] = add(row["funding"], p.funding)
        row["venues"].append(venue)
    figures: dict[str, Any] = {f: str(getattr(snapshot, f)) for f in (
        "capital", "equity", "realized_pnl", "unrealized_pnl", "gross_exposure", "net_exposure")}
    figures["unmarked"] = list(snapshot.unmarked)
    figures["fees"] = {q: str(v) for q, v in sorted(fees.items())}
    figures["funding"] = {q: str(v) for q, v in sorted(funding.items())}
    figures["by_symbol"] = {s: {k: (v if k == "venues" else str(v)) for k, v in row.items()}
                            for s, row in sorted(by_symbol.items())}
    return figures

"""One client's book as the portfolio endpoint answers it (`bosun.portfolio.client.<client>`):
its positions marked to the newest price, its PnL, exposure, trade metrics and execution quality
(services.portfolio.execution_quality, over the orders seen since the service started). Built
from that client's positions, round trips and orders alone, so no other client's numbers can
reach the reply."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from services.portfolio import execution_quality as eq
from services.portfolio.metrics import breakdown, trade_stats
from services.portfolio.positions import ZERO, Position
from services.portfolio.roundtrips import RoundTrip

Key = tuple[str, str, str]  # client, venue, symbol


def view(client: str, capital: Decimal, equity: Decimal, positions: Mapping[Key, Position],
         mark: Callable[[Key], Decimal], trips: Sequence[RoundTrip], orders: Sequence[eq.OrderRecord] = ()
         ) -> dict[str, Any]:
    """`positions`, `trips` and `orders` are the client's own; JSON-ready with Decimals kept exact."""
    execution = eq.quality(orders)
    rows = []
    realized = fees = gross = net = ZERO
    for key, p in sorted(positions.items()):
        price = mark(key)
        value = p.qty * price
        realized += p.realized_pnl - p.fees
        fees += p.fees
        gross += abs(value)
        net += value
        rows.append({"venue": key[1], "symbol": key[2], "qty": p.qty, "avg_price": p.avg_price, "mark": price,
                     "notional": value, "realized_pnl": p.realized_pnl - p.fees, "unrealized_pnl": p.unrealized(price),
                     "fees": p.fees})
    return {
        "client": client,
        "capital": capital,
        "equity": equity,
        "pnl": {"total": equity - capital, "realized": realized, "unrealized": equity - capital - realized,
                "fees": fees},
        "exposure": {"gross": gross, "net": net},
        "positions": rows,
        "metrics": {**trade_stats(trips), "total_fees": sum((t.fees for t in trips), ZERO),
                    "by_symbol": breakdown(trips, _symbol), "by_venue": breakdown(trips, _venue),
                    "execution": {**execution, "by_venue": eq.grouped(orders, _order_venue, execution)}},
    }


def own(client: str, items: Iterable[tuple[Key, Position]]) -> dict[Key, Position]:
    return {k: p for k, p in items if k[0] == client}


def _symbol(t: RoundTrip) -> str:
    return t.symbol


def _venue(t: RoundTrip) -> str:
    return t.venue


def _order_venue(r: eq.OrderRecord) -> str:
    return r.order.venue

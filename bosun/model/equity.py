"""A client's equity from the positions portfolio reports, marked to a price."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from proto.events import PositionChanged


def marked_equity(capital: Decimal, positions: Iterable[PositionChanged],
                  mark: Callable[[str, str], Decimal | None]) -> Decimal:
    """Capital plus, per position, its realized pnl (net of fees) and qty x (mark - avg_price)
    at `mark(venue, symbol)`; a market without a mark yet keeps the unrealized pnl that
    portfolio reported with the position."""
    equity = capital
    for p in positions:
        price = mark(p.venue, p.symbol)
        equity += p.realized_pnl + (p.unrealized_pnl if price is None else p.qty * (price - p.avg_price))
    return equity

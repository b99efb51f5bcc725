"""What a record adds to metrics.json beyond the whole-run metrics: the same trade metrics per
client, strategy, symbol and venue (services.portfolio.metrics.breakdown), and execution quality
(services.portfolio.execution_quality). Computed once, after a run or from a stored record.

A round trip's strategy is the strategy of the target whose order made its entry fill ("unknown"
when the order log does not name it); so a position two strategies share counts for the one
that opened it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from services.portfolio import execution_quality as eq
from services.portfolio.metrics import breakdown
from services.portfolio.roundtrips import RoundTrip

UNKNOWN = "unknown"


def compute(trips: Sequence[RoundTrip], journal: eq.OrderJournal,
            orders: Callable[[eq.OrderRecord], bool] = lambda r: True) -> dict[str, Any]:
    """The keys metrics.json gains, in this order: by_client, by_strategy, by_symbol, by_venue, execution
    (over the journal's `orders`; per venue and per order reason too)."""
    strategy_of_fill = {(f.venue, f.id): r.strategy or UNKNOWN for r in journal.orders.values() for f in r.fills}
    records = journal.records(orders)
    return {
        "by_client": breakdown(trips, lambda t: t.client),
        "by_strategy": breakdown(trips, lambda t: strategy_of_fill.get((t.venue, t.entry_fill_id), UNKNOWN)),
        "by_symbol": breakdown(trips, lambda t: t.symbol),
        "by_venue": breakdown(trips, lambda t: t.venue),
        "execution": {**eq.quality(records), "by_venue": eq.grouped(records, lambda r: r.order.venue),
                      "by_reason": eq.grouped(records, lambda r: r.order.reason)},
    }

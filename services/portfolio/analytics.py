"""What a record adds to metrics.json beyond the whole-run metrics: the same trade metrics per
client, strategy, symbol and venue (services.portfolio.metrics.breakdown), and execution quality
(services.portfolio.execution_quality). Computed once, after a run or from a stored record.

A round trip's strategy is the strategy of the target whose order made its entry fill ("unknown"
when the order log does not name it); so a position two strategies share counts for the one
that opened it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.portfolio import execution_quality as eq
from services.portfolio.metrics import breakdown
from services.portfolio.roundtrips import RoundTrip

def compute(trips: Sequence[RoundTrip], journal: eq.OrderJournal, whole: Mapping[str, Any],
            orders: Callable[[eq.OrderRecord], bool] = lambda r: True) -> dict[str, Any]:
    """The keys metrics.json gains, in this order: by_client, by_strategy, by_symbol, by_venue, execution
    (over the journal's `orders`; per venue and per order reason too). `whole` is metrics.compute's result
    over `trips`: a group that holds every trip takes its figures from it."""
    records = journal.records(orders)
    execution = eq.quality(records)
    return {
        "by_client": breakdown(trips, lambda t: t.client, whole),
        "by_strategy": breakdown(trips, lambda t: journal.strategy_of_fill(t.venue, t.entry_fill_id), whole),
        "by_symbol": breakdown(trips, lambda t: t.symbol, whole),
        "by_venue": breakdown(trips, lambda t: t.venue, whole),
        "execution": {**execution, "by_venue": eq.grouped(records, lambda r: r.order.venue, execution),
                      "by_reason": eq.grouped(records, lambda r: r.order.reason, execution)},
    }

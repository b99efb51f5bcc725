"""What a record adds to metrics.json beyond the whole-run metrics: the same trade metrics per
client, strategy, symbol and venue (services.portfolio.metrics.breakdown), and execution quality
(services.portfolio.execution_quality). Computed once, after a run or from a stored record.

A round trip's strategy is the strategy of the target whose order made its entry fill ("unknown"
when the order log does not name it); so a position two strategies share counts for the one
that opened it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any

from services.portfolio import execution_quality as eq
from services.portfolio.metrics import breakdowns
from services.portfolio.roundtrips import RoundTrip

def compute(trips: Sequence[RoundTrip], journal: eq.OrderJournal, whole: Mapping[str, Any],
            orders: Callable[[eq.OrderRecord], bool] | None = None) -> dict[str, Any]:
    """The keys metrics.json gains, in this order: by_client, by_strategy, by_symbol, by_venue, execution
    (over the journal's `orders`; per venue and per order reason too). `whole` is metrics.compute's result
    over `trips`: a group that holds every trip takes its figures from it. The keys are attrgetters, not
    lambdas: a backtest runs this once per trip and per order."""
    records = journal.records(orders)
    execution = eq.quality(records)
    return {
        **breakdowns(trips, {"by_client": attrgetter("client"), "by_strategy": journal.strategy_of_trip,
                             "by_symbol": attrgetter("symbol"), "by_venue": attrgetter("venue")}, whole),
        "execution": {**execution, "by_venue": eq.grouped(records, attrgetter("order.venue"), execution),
                      "by_reason": eq.grouped(records, attrgetter("order.reason"), execution)},
    }

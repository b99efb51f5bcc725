"""Execution quality: how well orders carried out the decisions behind them. Pure; fed the
order log (approved targets and order events) after the fact, by a backtest from its bus and
by `bosun report` from the TARGETS and ORDERS streams, so neither pays for it while trading.

Definitions, per group of orders (all, one venue, one order reason):
- orders: SubmitOrder commands seen; rejected: those a venue (or execution) answered with
  OrderRejected. order_success_rate = (orders - rejected) / orders.
- fill_ratio: filled quantity / ordered quantity, over orders with a quantity (a protective
  close_position order has none: its size is whatever the position is when it triggers).
- Decision price: the price the target was sized at (TargetPosition.price) for the orders
  placed to reach it; for a triggered stop or take-profit, its stop price, the price it was
  decided to trade at.
- slippage_bps: (fill - decision) / decision * 10,000, signed so that positive is a cost
  (a buy above, a sell below its decision price); averaged weighted by decision notional
  (qty * decision price). slippage_cost: the same in quote currency, sum of qty * (fill -
  decision) * side. Fees are not slippage.
- signal_to_fill_ms: first fill time - the target's time, per order with a fill.
  order_to_ack_ms: OrderAccepted time - SubmitOrder time. Both from the events' ts_event: market
  time in a backtest or paper run, wall time live. Each as p50, p95 and max.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from proto.events import Event, OrderAccepted, OrderFilled, OrderRejected, SubmitOrder, TargetApproved, TargetPosition

ZERO = Decimal(0)
BPS = Decimal(10_000)
NS_PER_MS = 1_000_000
MAX_ORDERS = 1_000_000  # orders remembered; the oldest go first (a report over years of orders)
MAX_TARGETS = 1_000_000


@dataclass(slots=True)
class OrderRecord:
    """One order and what became of it."""

    order: SubmitOrder
    strategy: str  # the strategy of the target behind it ("" when the target is unknown)
    decided_ns: int  # the target's time (the order's own when the target is unknown)
    decision_price: Decimal | None
    accepted_ns: int | None = None
    rejected: bool = False
    filled_qty: Decimal = ZERO
    first_fill_ns: int | None = None
    fills: list[OrderFilled] = field(default_factory=list)


class OrderJournal:
    """Approved targets and orders by id, bounded (MAX_TARGETS, MAX_ORDERS, oldest out)."""

    def __init__(self, max_orders: int = MAX_ORDERS, max_targets: int = MAX_TARGETS) -> None:
        self._targets: OrderedDict[str, TargetPosition] = OrderedDict()
        self.orders: OrderedDict[str, OrderRecord] = OrderedDict()
        self._max_orders, self._max_targets = max_orders, max_targets
        self.forgotten = 0  # orders dropped for the bound: their fills then count in no order

    def feed(self, events: Iterable[Any]) -> "OrderJournal":
        for event in events:
            self.on_event(event)
        return self

    def on_event(self, event: Event) -> None:
        kind = type(event)
        if kind is TargetApproved:
            self._remember(self._targets, event.target.id, event.target, self._max_targets)
        elif kind is SubmitOrder:
            if event.id not in self.orders:
                self._add_order(event)
        else:
            record = self.orders.get(getattr(event, "client_order_id", ""))
            if record is None:
                return
            if kind is OrderAccepted:
                record.accepted_ns = event.ts_event if record.accepted_ns is None else record.accepted_ns
            elif kind is OrderRejected:
                record.rejected = True
            elif kind is OrderFilled and all(f.id != event.id for f in record.fills):
                record.fills.append(event)
                record.filled_qty += event.qty
                if record.first_fill_ns is None:
                    record.first_fill_ns = event.ts_event

    def _add_order(self, order: SubmitOrder) -> None:
        target = self._targets.get(order.target_id)
        if order.stop_price is not None:
            decision = order.stop_price
        else:
            decision = target.price if target is not None else None
        record = OrderRecord(order=order, strategy=target.strategy if target is not None else "",
                             decided_ns=target.ts_event if target is not None else order.ts_event,
                             decision_price=decision)
        if self._remember(self.orders, order.id, record, self._max_orders):
            self.forgotten += 1

    @staticmethod
    def _remember(table: OrderedDict, key: str, value: Any, bound: int) -> bool:
        """Store; True when the oldest entry had to go."""
        table[key] = value
        if len(table) > bound:
            table.popitem(last=False)
            return True
        return False

    def strategy_of(self, client_order_id: str) -> str:
        record = self.orders.get(client_order_id)
        return record.strategy if record is not None and record.strategy else "unknown"

    def records(self, keep: Callable[[OrderRecord], bool] = lambda r: True) -> list[OrderRecord]:
        return [r for r in self.orders.values() if keep(r)]


def quality(records: Iterable[OrderRecord]) -> dict[str, Any]:
    """The module docstring's figures over `records`; None where undefined (no order, no fill)."""
    records = list(records)
    rejected = sum(1 for r in records if r.rejected)
    sized = [r for r in records if r.order.qty > 0]
    ordered = sum((r.order.qty for r in sized), ZERO)
    filled = sum((r.filled_qty for r in sized), ZERO)
    cost = weight = ZERO
    for r in records:
        if r.decision_price is None:
            continue
        sign = 1 if r.order.side == "buy" else -1
        for f in r.fills:
            cost += sign * f.qty * (f.price - r.decision_price)
            weight += f.qty * r.decision_price
    return {
        "orders": len(records),
        "rejected": rejected,
        "order_success_rate": (len(records) - rejected) / len(records) if records else None,
        "fills": sum(len(r.fills) for r in records),
        "fill_ratio": float(filled / ordered) if ordered else None,
        "slippage_bps": float(cost / weight * BPS) if weight else None,
        "slippage_cost": cost,
        "signal_to_fill_ms": _spread([(r.first_fill_ns - r.decided_ns) / NS_PER_MS
                                      for r in records if r.first_fill_ns is not None]),
        "order_to_ack_ms": _spread([(r.accepted_ns - r.order.ts_event) / NS_PER_MS
                                    for r in records if r.accepted_ns is not None]),
    }


def grouped(records: Iterable[OrderRecord], key: Callable[[OrderRecord], str]) -> dict[str, dict[str, Any]]:
    """`quality` per group (a venue, an order reason), groups sorted by name."""
    groups: dict[str, list[OrderRecord]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return {name: quality(rs) for name, rs in sorted(groups.items())}


def _spread(values: list[float]) -> dict[str, float] | None:
    """p50, p95 (nearest rank) and max; None without values."""
    if not values:
        return None
    values.sort()

    def rank(p: float) -> float:
        return values[max(0, math.ceil(p * len(values)) - 1)]

    return {"p50": rank(0.5), "p95": rank(0.95), "max": values[-1]}

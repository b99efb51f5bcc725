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
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import msgspec

from proto.events import Event, OrderAccepted, OrderFilled, OrderRejected, SubmitOrder, TargetApproved, TargetPosition
from services.portfolio.metrics import groups_of

ZERO = Decimal(0)
BPS = Decimal(10_000)
NS_PER_MS = 1_000_000
MAX_ORDERS = 1_000_000  # orders remembered; the oldest go first (a report over years of orders)
MAX_TARGETS = 1_000_000
FILLS_PER_ORDER = 4  # fills remembered (dedup, and which order each belongs to): max_orders x this


class OrderRecord(msgspec.Struct, gc=False):
    """One order and what became of it. A Struct, not a dataclass: made in C, one per order (gc=False:
    events and numbers only, never in a reference cycle)."""

    order: SubmitOrder
    strategy: str  # the strategy of the target behind it ("" when the target is unknown)
    decided_ns: int  # the target's time (the order's own when the target is unknown)
    decision_price: Decimal | None
    accepted_ns: int | None = None
    rejected: bool = False
    fills: int = 0
    filled_qty: Decimal = ZERO
    filled_notional: Decimal = ZERO  # sum of qty x price over its fills
    first_fill_ns: int | None = None


class OrderJournal:
    """Approved targets and orders by id, bounded (MAX_TARGETS, MAX_ORDERS, oldest out)."""

    def __init__(self, max_orders: int = MAX_ORDERS, max_targets: int = MAX_TARGETS) -> None:
        self._targets: dict[str, TargetPosition] = {}
        self.orders: dict[str, OrderRecord] = {}
        self._max_orders, self._max_targets = max_orders, max_targets
        self.forgotten = 0  # orders dropped for the bound: their fills then count in no order
        # (venue, fill id) -> client order id of the fills counted: a fill delivered twice counts once
        self.fill_orders: dict[tuple[str, str], str] = {}
        # Each dict's keys, oldest first, for the bounds. (An OrderedDict keeps its own order, but inserts at
        # twice a dict's cost and looks each key up again to list its values: per order, after every backtest.)
        self._target_ids: deque[str] = deque()
        self._order_ids: deque[str] = deque()
        self._fill_keys: deque[tuple[str, str]] = deque()

    def on_event(self, event: Event) -> None:
        self.feed((event,))

    def feed(self, events: Iterable[Any]) -> "OrderJournal":
        """Every event in one loop, with no call per event: a backtest feeds its whole order log at once."""
        orders, targets, fill_orders = self.orders, self._targets, self.fill_orders
        order_ids, target_ids, fill_keys = self._order_ids, self._target_ids, self._fill_keys
        max_orders, max_targets, max_fills = self._max_orders, self._max_targets, self._max_orders * FILLS_PER_ORDER
        for event in events:
            kind = type(event)
            if kind is OrderFilled:  # most of a log: first
                record = orders.get(event.client_order_id)
                key = (event.venue, event.id)
                if record is None or key in fill_orders:
                    continue
                fill_orders[key] = event.client_order_id
                fill_keys.append(key)
                if len(fill_keys) > max_fills:
                    del fill_orders[fill_keys.popleft()]
                record.fills += 1
                record.filled_qty += event.qty
                record.filled_notional += event.qty * event.price
                if record.first_fill_ns is None:
                    record.first_fill_ns = event.ts_event
            elif kind is SubmitOrder:
                if event.id in orders:
                    continue
                target = targets.get(event.target_id)
                if event.stop_price is not None:
                    decision = event.stop_price
                else:
                    decision = target.price if target is not None else None
                if target is None:
                    orders[event.id] = OrderRecord(event, "", event.ts_event, decision)
                else:
                    orders[event.id] = OrderRecord(event, target.strategy, target.ts_event, decision)
                order_ids.append(event.id)
                if len(order_ids) > max_orders:
                    del orders[order_ids.popleft()]
                    self.forgotten += 1
            elif kind is TargetApproved:
                target = event.target
                if target.id not in targets:  # a target approved again keeps its place, as in an OrderedDict
                    target_ids.append(target.id)
                targets[target.id] = target
                if len(target_ids) > max_targets:
                    del targets[target_ids.popleft()]
            elif kind is OrderAccepted or kind is OrderRejected:
                record = orders.get(event.client_order_id)
                if record is None:
                    continue
                if kind is OrderRejected:
                    record.rejected = True
                elif record.accepted_ns is None:
                    record.accepted_ns = event.ts_event
        return self

    def strategy_of_trip(self, trip: Any) -> str:
        """The strategy of a round trip's entry fill ("unknown" for a fill not counted, or an order
        whose target is unknown): a breakdown's key itself, no lambda per trip."""
        record = self.orders.get(self.fill_orders.get((trip.venue, trip.entry_fill_id)))  # type: ignore[arg-type]
        return record.strategy if record is not None and record.strategy else "unknown"

    def records(self, keep: Callable[[OrderRecord], bool] | None = None) -> list[OrderRecord]:
        """The orders `keep` keeps (all without one: no call per order)."""
        return list(self.orders.values()) if keep is None else [r for r in self.orders.values() if keep(r)]


def quality(records: Iterable[OrderRecord]) -> dict[str, Any]:
    """The module docstring's figures over `records`; None where undefined (no order, no fill)."""
    n = rejected = fills = 0
    ordered = filled = cost = weight = ZERO
    to_fill: list[float] = []
    to_ack: list[float] = []
    for r in records:
        n += 1
        order = r.order
        if r.rejected:
            rejected += 1
        if order.qty:
            ordered += order.qty
            filled += r.filled_qty
        if r.accepted_ns is not None:
            to_ack.append((r.accepted_ns - order.ts_event) / NS_PER_MS)
        if not r.fills:
            continue
        fills += r.fills
        to_fill.append((r.first_fill_ns - r.decided_ns) / NS_PER_MS)
        decision = r.decision_price
        if decision is not None:
            paid = r.filled_qty * decision
            moved = r.filled_notional - paid
            if order.side == "buy":
                cost += moved
            else:
                cost -= moved  # not += -moved: the same sum, one operation fewer
            weight += paid
    return {
        "orders": n,
        "rejected": rejected,
        "order_success_rate": (n - rejected) / n if n else None,
        "fills": fills,
        "fill_ratio": float(filled / ordered) if ordered else None,
        "slippage_bps": float(cost / weight * BPS) if weight else None,
        "slippage_cost": cost,
        "signal_to_fill_ms": _spread(to_fill),
        "order_to_ack_ms": _spread(to_ack),
    }


def grouped(records: Sequence[OrderRecord], key: Callable[[OrderRecord], str],
            whole: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """`quality` per group (a venue, an order reason), groups sorted by name. `whole`, quality's result
    over the same `records`, is a group's answer when it holds every record."""
    groups = groups_of(records, key)
    if whole is not None and len(groups) == 1:
        return {name: dict(whole) for name in groups}
    return {name: quality(rs) for name, rs in sorted(groups.items())}


def _spread(values: list[float]) -> dict[str, float] | None:
    """p50, p95 (nearest rank) and max; None without values."""
    if not values:
        return None
    values.sort()

    def rank(p: float) -> float:
        return values[max(0, math.ceil(p * len(values)) - 1)]

    return {"p50": rank(0.5), "p95": rank(0.95), "max": values[-1]}

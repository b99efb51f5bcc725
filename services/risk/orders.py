"""Each client's open orders, from the order events: an order is open from its SubmitOrder (or
an OrderAccepted for one never seen submitted, e.g. found by reconciliation) until it is
rejected, canceled or filled in full. Bounded: past MAX_TRACKED the oldest is forgotten."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from proto.events import OrderAccepted, OrderCanceled, OrderFilled, OrderRejected, OrdersCanceled, SubmitOrder

MAX_TRACKED = 100_000
ZERO = Decimal(0)


class OpenOrders:
    __slots__ = ("_left", "by_client", "_limit")

    def __init__(self, limit: int = MAX_TRACKED) -> None:
        # (client, client order id) -> qty not yet filled; 0: unknown (a close-position order,
        # or one first seen accepted), closed by its first fill
        self._left: dict[tuple[str, str], Decimal] = {}
        self.by_client: Counter[str] = Counter()
        self._limit = limit

    def _open(self, client: str, order_id: str, qty: Decimal) -> None:
        key = (client, order_id)
        if key in self._left:
            return
        if len(self._left) >= self._limit:
            self._close(next(iter(self._left)))
        self._left[key] = qty
        self.by_client[client] += 1

    def _close(self, key: tuple[str, str]) -> None:
        if self._left.pop(key, None) is not None:
            self.by_client[key[0]] -= 1

    def on_submit_order(self, order: SubmitOrder) -> None:
        self._open(order.client, order.id, order.qty)

    def on_order_accepted(self, accepted: OrderAccepted) -> None:
        self._open(accepted.client, accepted.client_order_id, ZERO)

    def on_order_rejected(self, rejected: OrderRejected) -> None:
        self._close((rejected.client, rejected.client_order_id))

    def on_order_canceled(self, canceled: OrderCanceled) -> None:
        self._close((canceled.client, canceled.client_order_id))

    def on_orders_canceled(self, canceled: OrdersCanceled) -> None:
        for coid in canceled.client_order_ids:
            self._close((canceled.client, coid))

    def on_order_filled(self, fill: OrderFilled) -> None:
        """Called once per fill (the caller drops redelivered copies)."""
        key = (fill.client, fill.client_order_id)
        left = self._left.get(key)
        if left is None:
            return
        left -= fill.qty
        if left > 0:
            self._left[key] = left
        else:
            self._close(key)

"""The last-line guard: before execution places the orders of an approved target it re-checks
the caps risk applied, from the same configuration, so that a faulty or compromised risk
service cannot push an order past one. The rules are risk's own (bosun.model.order_rules);
what passes here passed there, so a refusal means the two disagree.

As in risk, a target that only reduces exposure meets only the order rate; the others also
the price band (the target's reference price against the newest price execution holds) and
the maximum order notional (each order's quantity at the newest price, else the target's)."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from bosun.model.order_rules import RateWindow, notional, off_market_pct
from proto.events import PriceSnapshot, TargetPosition
from services.execution.config import GuardConfig


class Refusal(NamedTuple):
    rule: str  # risk's name of the limit: max_order_notional, max_orders_per_s, ...
    detail: str


class _ClientGuard:
    __slots__ = ("notional", "band_pct", "windows")

    def __init__(self, config: GuardConfig) -> None:
        self.notional, self.band_pct = config.max_order_notional, config.price_band_pct
        self.windows = [(name, RateWindow(limit, window_s)) for name, limit, window_s in (
            ("max_orders_per_s", config.max_orders_per_s, 1), ("max_orders_per_min", config.max_orders_per_min, 60))
            if limit is not None]


class Guard:
    def __init__(self, config: dict[str, GuardConfig]) -> None:
        self._clients = {client: _ClientGuard(c) for client, c in config.items()}
        self.reads_prices = any(g.notional is not None or g.band_pct is not None for g in self._clients.values())

    def check(self, target: TargetPosition, reducing: bool, orders: list[Decimal], snapshot: PriceSnapshot | None,
              now_ns: int) -> Refusal | None:
        """`orders`: the quantities of the orders the target would place now."""
        guard = self._clients.get(target.client)
        if guard is None:
            return None
        where = f"{target.symbol} on {target.venue}"
        for name, window in guard.windows:
            if window.full(now_ns):
                return Refusal(name, f"client {target.client!r} already placed the orders of {window.limit} targets "
                                     f"in the last {window.window_s} s, the maximum")
        if reducing:
            return None
        if guard.band_pct is not None:
            if snapshot is None:
                return Refusal("price_band", f"no price for {where}: cannot check the target's price {target.price}")
            off = off_market_pct(target.price, snapshot.price)
            if off > guard.band_pct:
                return Refusal("price_band", f"target {target.id} was sized at {target.price}, {off:.2f}% from the "
                                             f"newest price {snapshot.price} of {where}; the band is {guard.band_pct}%")
        if guard.notional is not None:
            price = snapshot.price if snapshot is not None else target.price
            for qty in orders:
                if notional(qty, price) > guard.notional:
                    return Refusal("max_order_notional", f"an order of {qty} {where} x {price} = "
                                                         f"{notional(qty, price)} is above the maximum order "
                                                         f"notional of {guard.notional}")
        return None

    def on_placed(self, client: str, now_ns: int) -> None:
        """A target's orders went out: one more in the client's windows."""
        guard = self._clients.get(client)
        if guard is not None:
            for _, window in guard.windows:
                window.add(now_ns)

"""Gross exposure: every client's positions (the signed sums of fills) valued at a mark per
market, the newest price when one was read, else the price of the market's last fill. A market
whose last approved target is larger than its position counts at the target: its orders may not
have filled yet, and another market's target must not be approved as if they never will."""

from __future__ import annotations

from decimal import Decimal

from bosun.model.positions import ZERO, Key, NetPositions
from bosun.model.prices import LatestPrices
from proto.events import OrderFilled


class Exposure:
    __slots__ = ("positions", "prices", "_fill_prices", "approved")

    def __init__(self, positions: NetPositions, prices: LatestPrices) -> None:
        self.positions = positions
        self.prices = prices
        self._fill_prices: dict[tuple[str, str], Decimal] = {}
        self.approved: dict[Key, Decimal] = {}  # the last approved target per (client, venue, symbol)

    def on_order_filled(self, fill: OrderFilled) -> None:
        self._fill_prices[(fill.venue, fill.symbol)] = fill.price

    def mark(self, venue: str, symbol: str) -> Decimal:
        snapshot = self.prices.by_market.get((venue, symbol))
        return snapshot.price if snapshot is not None else self._fill_prices.get((venue, symbol), ZERO)

    def gross(self, client: str | None, excluding: Key) -> Decimal:
        """The sum of |qty| x mark over `client`'s positions (every client's when None), leaving
        out `excluding`: the market a target is about, which its caller values at the target."""
        total = ZERO
        held, approved = self.positions.by_key, self.approved
        for key in held.keys() | approved.keys() if approved else held:
            if key != excluding and (client is None or key[0] == client):
                size = max(abs(held.get(key, ZERO)), abs(approved.get(key, ZERO)))
                if size:
                    total += size * self.mark(key[1], key[2])
        return total

"""Gross exposure: every client's positions (the signed sums of fills) valued at a mark per
market, the newest price when one was read, else the price of the market's last fill."""

from __future__ import annotations

from decimal import Decimal

from bosun.model.positions import ZERO, Key, NetPositions
from bosun.model.prices import LatestPrices
from proto.events import OrderFilled


class Exposure:
    __slots__ = ("positions", "prices", "_fill_prices")

    def __init__(self, positions: NetPositions, prices: LatestPrices) -> None:
        self.positions = positions
        self.prices = prices
        self._fill_prices: dict[tuple[str, str], Decimal] = {}

    def on_order_filled(self, fill: OrderFilled) -> None:
        self._fill_prices[(fill.venue, fill.symbol)] = fill.price

    def mark(self, venue: str, symbol: str) -> Decimal:
        snapshot = self.prices.by_market.get((venue, symbol))
        return snapshot.price if snapshot is not None else self._fill_prices.get((venue, symbol), ZERO)

    def gross(self, client: str | None, excluding: Key) -> Decimal:
        """The sum of |qty| x mark over `client`'s positions (every client's when None), leaving
        out `excluding`: the market a target is about, which its caller values at the target."""
        total = ZERO
        for key, qty in self.positions.by_key.items():
            if qty and key != excluding and (client is None or key[0] == client):
                total += abs(qty) * self.mark(key[1], key[2])
        return total

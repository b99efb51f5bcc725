"""The signed position from fills: + long, - short, the sum of signed fill quantities."""

from __future__ import annotations

from decimal import Decimal

from proto.events import OrderFilled, Side

ZERO = Decimal(0)
Key = tuple[str, str, str]  # client, venue, symbol


def signed(side: Side, qty: Decimal) -> Decimal:
    return qty if side == "buy" else -qty


class NetPositions:
    """(client, venue, symbol) -> signed quantity, the sum of the fills applied. The caller
    de-duplicates: applying a fill twice counts it twice."""

    __slots__ = ("by_key",)

    def __init__(self) -> None:
        self.by_key: dict[Key, Decimal] = {}

    def apply(self, fill: OrderFilled) -> Decimal:
        """Add one fill; returns the new position."""
        key = (fill.client, fill.venue, fill.symbol)
        qty = self.by_key[key] = self.by_key.get(key, ZERO) + signed(fill.side, fill.qty)
        return qty

    def get(self, key: Key) -> Decimal:
        return self.by_key.get(key, ZERO)

    def open(self) -> dict[str, str]:
        """The non-flat positions as `client.venue.symbol` -> qty text, sorted (for status)."""
        return {".".join(key): str(qty) for key, qty in sorted(self.by_key.items()) if qty}

"""The newest price of each market, as a reader of the KV bucket `prices` keeps it."""

from __future__ import annotations

from proto.events import PriceSnapshot


class LatestPrices:
    """(venue, symbol) -> its newest PriceSnapshot. Snapshots can arrive out of order (the
    LATEST replay of a restart, a redelivery): an older one never replaces a newer one.
    Actors subscribe `on_price_snapshot` as their price input and read `by_market`."""

    __slots__ = ("by_market",)

    def __init__(self) -> None:
        self.by_market: dict[tuple[str, str], PriceSnapshot] = {}

    def on_price_snapshot(self, snapshot: PriceSnapshot) -> None:
        key = (snapshot.venue, snapshot.symbol)
        held = self.by_market.get(key)
        if held is None or snapshot.ts_event >= held.ts_event:
            self.by_market[key] = snapshot

from __future__ import annotations

from decimal import Decimal as D

from bosun.model.prices import LatestPrices
from proto.events import PriceSnapshot


def snap(symbol: str, ts: int, price: str) -> PriceSnapshot:
    return PriceSnapshot(id=f"binance.{symbol}.{ts}", ts_event=ts, venue="binance", symbol=symbol, price=D(price))


def test_keeps_the_newest_snapshot_per_market_whatever_the_arrival_order() -> None:
    prices = LatestPrices()
    for s in (snap("BTCUSDT", 2, "101"), snap("BTCUSDT", 1, "100"), snap("ETHUSDT", 1, "5"),
              snap("BTCUSDT", 2, "102")):  # older: ignored; same time: the later arrival
        prices.on_price_snapshot(s)
    assert {k: str(s.price) for k, s in prices.by_market.items()} == {
        ("binance", "BTCUSDT"): "102", ("binance", "ETHUSDT"): "5"}

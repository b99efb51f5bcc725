"""The in-process bus: FIFO delivery by subject, taps, KV last values, the pending bound."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from bosun.runtime.inproc import BusOverflow, InProcessBus
from proto.events import PriceSnapshot


def snapshot(n: int, symbol: str = "BTCUSDT") -> PriceSnapshot:
    return PriceSnapshot(id=f"s{n}", ts_event=n, venue="binance", symbol=symbol, price=D(n))


def test_delivery_is_fifo_to_matching_handlers_and_taps_see_everything() -> None:
    bus = InProcessBus()
    got: list[tuple[str, str]] = []
    seen: list[str] = []
    bus.subscribe("$KV.prices.binance.BTCUSDT", lambda m: got.append(("btc", m.id)))
    bus.subscribe("$KV.prices.>", lambda m: got.append(("all", m.id)))
    bus.tap(lambda subject, m: seen.append(subject))
    for n, symbol in ((1, "BTCUSDT"), (2, "ETHUSDT"), (3, "BTCUSDT")):
        bus.publish(snapshot(n, symbol))
    bus.drain()
    assert got == [("btc", "s1"), ("all", "s1"), ("all", "s2"), ("btc", "s3"), ("all", "s3")]
    assert seen == ["$KV.prices.binance.BTCUSDT", "$KV.prices.binance.ETHUSDT", "$KV.prices.binance.BTCUSDT"]


def test_kv_keeps_the_newest_value_from_publish_on_and_late_subscribers_get_it() -> None:
    bus = InProcessBus()
    bus.publish(snapshot(1))
    bus.publish(snapshot(2))
    assert bus.kv("$KV.prices.binance.BTCUSDT").id == "s2"  # before delivery, as a KV put
    late: list[str] = []
    bus.subscribe("$KV.prices.>", lambda m: late.append(m.id))
    assert late == ["s2"]


def test_pending_messages_are_bounded_naming_the_subject() -> None:
    bus = InProcessBus(max_pending=2)
    bus.publish(snapshot(1))
    bus.set_trading_enabled(True)
    with pytest.raises(BusOverflow, match=r"2 undelivered .* \$KV\.prices\.binance\.BTCUSDT"):
        bus.publish(snapshot(2))
    with pytest.raises(BusOverflow, match="control.trading_enabled"):
        bus.set_trading_enabled(False)


def test_a_closed_bus_forgets_its_wiring_and_what_was_pending() -> None:
    bus = InProcessBus()
    got: list[str] = []
    bus.subscribe("$KV.prices.>", lambda m: got.append(m.id))
    bus.tap(lambda subject, m: got.append(subject))
    bus.publish(snapshot(1))
    bus.close()
    bus.publish(snapshot(2))
    bus.drain()
    assert got == [] and bus.kv("$KV.prices.binance.BTCUSDT").id == "s2"

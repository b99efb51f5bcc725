"""The ingest actor on the in-process bus: each bar or trade is published with the
newest price of its venue.symbol."""

from __future__ import annotations

from decimal import Decimal
from itertools import islice
from typing import Any

import msgspec

from bosun.runtime.clock import SimClock
from bosun.runtime.inproc import InProcessBus
from proto.events import Bar, PriceSnapshot, Trade
from services.ingest.actor import MarketDataActor
from services.ingest.files import read_klines, read_trades
from tests.datafiles import BTC_1M, BTC_TRADES, data_file


def wired() -> tuple[InProcessBus, MarketDataActor, list[tuple[str, Any]]]:
    bus = InProcessBus()
    actor = bus.attach(MarketDataActor(SimClock(), bus))
    seen: list[tuple[str, Any]] = []
    bus.tap(lambda subject, message: seen.append((subject, message)))
    return bus, actor, seen


def test_is_a_source_named_ingest() -> None:
    _, actor, _ = wired()
    assert actor.name == "ingest" and list(actor.inputs()) == []


def test_bar_publishes_the_bar_and_a_price_snapshot_with_its_range() -> None:
    bus, actor, seen = wired()
    bar = next(read_klines(data_file(BTC_1M)))
    actor.on_bar(bar)
    bus.drain()
    snapshot = PriceSnapshot(id=f"binance.BTCUSDT.{bar.ts_event}", ts_event=bar.ts_event, venue="binance",
                             symbol="BTCUSDT", price=Decimal("63440.01"), open=Decimal("63443.76"),
                             high=Decimal("63460.0"), low=Decimal("63440.0"))
    assert seen == [("md.bar.binance.BTCUSDT", bar), ("$KV.prices.binance.BTCUSDT", snapshot)]
    assert bus.kv("$KV.prices.binance.BTCUSDT") == snapshot
    assert actor.status() == {"binance.BTCUSDT": {"price": "63440.01", "ts_event": bar.ts_event}}


def test_trade_publishes_the_trade_and_its_price() -> None:
    bus, actor, seen = wired()
    first, second = islice(read_trades(data_file(BTC_TRADES)), 2)
    actor.on_trade(first)
    actor.on_trade(second)
    bus.drain()
    assert [subject for subject, _ in seen] == ["md.trade.binance.BTCUSDT", "$KV.prices.binance.BTCUSDT"] * 2
    assert [m for _, m in seen if isinstance(m, Trade)] == [first, second]
    prices = [m for _, m in seen if isinstance(m, PriceSnapshot)]
    assert [(p.id, p.ts_event, p.price, p.open) for p in prices] == [
        (first.id, first.ts_event, first.price, None), (second.id, second.ts_event, second.price, None)]
    assert bus.kv("$KV.prices.binance.BTCUSDT") == prices[-1]


def test_status_keeps_the_last_price_of_each_symbol() -> None:
    bus, actor, _ = wired()
    btc = Bar(id="binance.BTCUSDT.1m.0", ts_event=60, venue="binance", symbol="BTCUSDT", interval="1m",
              ts_open=0, open=Decimal(1), high=Decimal(3), low=Decimal(1), close=Decimal(2), volume=Decimal(5))
    eth = Trade(id="binance.ETHUSDT.7", ts_event=61, venue="binance", symbol="ETHUSDT", price=Decimal("2500.5"),
                qty=Decimal("0.1"), aggressor="buy")
    actor.on_bar(btc)
    actor.on_trade(eth)
    bus.drain()
    assert actor.status() == {"binance.BTCUSDT": {"price": "2", "ts_event": 60},
                              "binance.ETHUSDT": {"price": "2500.5", "ts_event": 61}}


def test_a_quote_publishes_itself_and_adds_best_bid_and_ask_to_the_newest_price() -> None:
    from proto.events import Quote
    from services.ingest.files import read_market_file
    from tests.datafiles import BTC_BOOK_TICKER

    bus, actor, seen = wired()
    first_quote = next(read_market_file(data_file(BTC_BOOK_TICKER)))
    assert type(first_quote) is Quote
    actor.on_quote(first_quote)  # no trade yet: the price is the mid
    trade = next(read_trades(data_file(BTC_TRADES)))
    trade = msgspec.structs.replace(trade, ts_event=first_quote.ts_event + 1)
    actor.on_trade(trade)
    later = msgspec.structs.replace(first_quote, id="q2", ts_event=trade.ts_event + 1, bid=Decimal("61837.60"))
    actor.on_quote(later)
    actor.on_quote(later)  # a repeat: nothing
    bus.drain()
    assert [subject for subject, _ in seen] == ["md.quote.binance.BTCUSDT", "$KV.prices.binance.BTCUSDT",
                                                "md.trade.binance.BTCUSDT", "$KV.prices.binance.BTCUSDT",
                                                "md.quote.binance.BTCUSDT", "$KV.prices.binance.BTCUSDT"]
    prices = [m for _, m in seen if isinstance(m, PriceSnapshot)]
    assert (prices[0].price, prices[0].bid, prices[0].ask) == ((first_quote.bid + first_quote.ask) / 2,
                                                                first_quote.bid, first_quote.ask)
    assert (prices[1].bid, prices[1].ask) == (None, None)  # a trade's snapshot, as before
    assert (prices[2].price, prices[2].bid, prices[2].ask, prices[2].ts_event) == (
        trade.price, Decimal("61837.60"), first_quote.ask, trade.ts_event + 1)

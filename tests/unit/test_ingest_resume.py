"""The ingest actor never publishes market data older than what the platform already has per
venue.symbol, and never steps KV `prices` back in time: a restart that replays the file from
the top, a websocket's overlap after a reconnect, a REST fill reaching into what was stored."""

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
from services.ingest.newest import Newest, Stored
from tests.datafiles import BTC_1M, BTC_TRADES, ETH_1M, data_file

BTC, ETH = ("binance", "BTCUSDT"), ("binance", "ETHUSDT")


def wired(stored: Stored | None = None) -> tuple[InProcessBus, MarketDataActor, list[tuple[str, Any]]]:
    bus = InProcessBus()
    actor = bus.attach(MarketDataActor(SimClock(), bus))
    if stored is not None:
        actor.resume(stored)
    seen: list[tuple[str, Any]] = []
    bus.tap(lambda subject, message: seen.append((subject, message)))
    return bus, actor, seen


def published(seen: list[tuple[str, Any]], kind: type) -> list[Any]:
    return [m for _, m in seen if type(m) is kind]


def price_of(bar: Bar) -> PriceSnapshot:
    return PriceSnapshot(id=f"{bar.venue}.{bar.symbol}.{bar.ts_event}", ts_event=bar.ts_event, venue=bar.venue,
                         symbol=bar.symbol, price=bar.close, open=bar.open, high=bar.high, low=bar.low)


def test_a_restarted_replay_publishes_only_the_bars_after_the_newest_stored_one() -> None:
    bars = list(islice(read_klines(data_file(BTC_1M)), 300))
    bus, actor, seen = wired(Stored(bars={BTC: bars[119]}, prices={BTC: price_of(bars[119])}))
    actor.on_events(bars)  # the file from the top, as a restart reads it
    bus.drain()
    assert published(seen, Bar) == bars[120:]
    prices = [p.ts_event for p in published(seen, PriceSnapshot)]
    assert prices == [b.ts_event for b in bars[120:]]
    assert bus.kv("$KV.prices.binance.BTCUSDT") == price_of(bars[-1])


def test_the_rule_is_per_venue_and_symbol() -> None:
    btc = list(islice(read_klines(data_file(BTC_1M)), 50))
    eth = list(islice(read_klines(data_file(ETH_1M)), 50))
    other_venue = [replace_venue(b, "bybit") for b in btc[:10]]
    bus, actor, seen = wired(Stored(bars={BTC: btc[29]}))
    for b, e in zip(btc, eth):
        actor.on_bar(b)
        actor.on_bar(e)
    actor.on_events(other_venue)  # older than binance's newest BTCUSDT, but bybit has nothing yet
    bus.drain()
    out = published(seen, Bar)
    assert [b for b in out if b.symbol == "BTCUSDT" and b.venue == "binance"] == btc[30:]
    assert [b for b in out if b.symbol == "ETHUSDT"] == eth
    assert [b for b in out if b.venue == "bybit"] == other_venue


def replace_venue(bar: Bar, venue: str) -> Bar:
    return msgspec.structs.replace(bar, venue=venue, id=bar.id.replace(bar.venue, venue, 1))


def test_an_overlap_after_a_reconnect_is_not_published_twice() -> None:
    bars = list(islice(read_klines(data_file(BTC_1M)), 100))
    bus, actor, seen = wired()
    actor.on_events(bars[:60])
    actor.on_events(bars[40:])  # the second connection (or a REST fill) starts 20 bars back
    bus.drain()
    assert published(seen, Bar) == bars


def test_trades_of_one_millisecond_are_each_published_once() -> None:
    first, second = islice(read_trades(data_file(BTC_TRADES)), 2)
    twin = msgspec.structs.replace(second, ts_event=first.ts_event)  # another trade in the same ms
    bus, actor, seen = wired(Stored(trades={BTC: first}))
    actor.on_events([first, twin, twin, first])
    bus.drain()
    assert published(seen, Trade) == [twin]
    assert [p.id for p in published(seen, PriceSnapshot)] == [twin.id]


def test_a_stored_price_newer_than_the_stored_bars_is_never_stepped_back() -> None:
    # The trades ran ahead of the last bar: the next bars are new, their closes are older prices.
    bars = list(islice(read_klines(data_file(BTC_1M)), 10))
    trade = Trade(id="binance.BTCUSDT.1", ts_event=bars[5].ts_event + 1, venue="binance", symbol="BTCUSDT",
                  price=Decimal("1"), qty=Decimal("1"), aggressor="buy")
    stored_price = PriceSnapshot(id=trade.id, ts_event=trade.ts_event, venue="binance", symbol="BTCUSDT",
                                 price=trade.price)
    bus, actor, seen = wired(Stored(bars={BTC: bars[2]}, trades={BTC: trade}, prices={BTC: stored_price}))
    actor.on_events(bars)
    bus.drain()
    assert published(seen, Bar) == bars[3:]
    assert [p.ts_event for p in published(seen, PriceSnapshot)] == [b.ts_event for b in bars[6:]]
    assert actor.status()["binance.BTCUSDT"]["ts_event"] == bars[-1].ts_event


def test_a_live_bar_closing_after_a_trade_of_the_next_minute_keeps_the_trades_price() -> None:
    bar = next(read_klines(data_file(BTC_1M)))
    trade = Trade(id="binance.BTCUSDT.9", ts_event=bar.ts_event + 5_000_000, venue="binance", symbol="BTCUSDT",
                  price=Decimal("63441"), qty=Decimal("0.1"), aggressor="sell")
    bus, actor, seen = wired()
    actor.on_trade(trade)
    actor.on_bar(bar)  # the closed kline arrives 5 ms after the trade that followed it
    bus.drain()
    assert published(seen, Bar) == [bar]
    assert [p.id for p in published(seen, PriceSnapshot)] == [trade.id]
    assert bus.kv("$KV.prices.binance.BTCUSDT").ts_event == trade.ts_event


def test_newest_after_skips_the_old_part_of_a_file_for_a_replay() -> None:
    bars = list(islice(read_klines(data_file(BTC_1M)), 200))
    assert list(Newest(Stored(bars={BTC: bars[149]})).after(bars)) == bars[150:]
    assert list(Newest().after(bars + bars)) == bars

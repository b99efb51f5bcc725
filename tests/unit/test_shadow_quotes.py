"""The shadow venue's book model on best bid/ask and trades: by hand on small books, then against
the real Binance captures (trades + bookTicker): resting limits fill no earlier than the first
trade at or through their price or quote whose opposite best reaches it, and never for more than
those traded and showed, a large market order takes the displayed sizes quote after quote, and a
cancel within the cancel latency loses to a fill."""

from __future__ import annotations

import bisect
from decimal import Decimal as D
from functools import cache

import pytest

from bosun.runtime.actor import Outbox
from bosun.runtime.clock import SimClock
from proto.events import (CancelOrder, OrderCanceled, OrderFilled, OrderRejected, Quote, SubmitOrder, Trade)
from services.execution.config import ExecutionConfig, VenueConfig
from services.execution.venues.shadow import ShadowVenue
from services.execution.venues.shadow_adapter import ShadowAdapter
from services.ingest.files import read_market_file
from services.ingest.replay import merge_by_time
from tests.datafiles import BTC_BOOK_TICKER, BTC_TRADES, USDM_BTC_BOOK_TICKER, USDM_BTC_TRADES, data_file

T0 = 1_723_161_300_000_000_000
MS = 1_000_000


def quote(n: int, bid: str, bid_qty: str, ask: str, ask_qty: str, ts: int | None = None) -> Quote:
    return Quote(id=f"q{n}", ts_event=T0 + n * MS if ts is None else ts, venue="binance", symbol="BTCUSDT",
                 bid=D(bid), bid_qty=D(bid_qty), ask=D(ask), ask_qty=D(ask_qty))


def trade(n: int, price: str, qty: str, aggressor: str) -> Trade:
    return Trade(id=f"t{n}", ts_event=T0 + n * MS, venue="binance", symbol="BTCUSDT", price=D(price), qty=D(qty),
                 aggressor=aggressor)  # type: ignore[arg-type]


def order(coid: str, side: str, qty: str, limit: str | None = None, at: int = 0, **more: object) -> SubmitOrder:
    return SubmitOrder(id=coid, ts_event=T0 + at * MS, client="alice", venue="binance", symbol="BTCUSDT",
                       side=side, qty=D(qty), order_type="limit" if limit else "market",  # type: ignore[arg-type]
                       limit_price=D(limit) if limit else None, target_id="t", market_ns=T0 + at * MS, **more)  # type: ignore[arg-type]


def venue(**cfg: object) -> ShadowVenue:
    settings = {"fee_bps": D(10), "maker_fee_bps": D(2), "fill_model": "book", "step_size": D("0.00001")} | cfg
    return ShadowVenue("binance", {"alice": VenueConfig(**settings)})  # type: ignore[arg-type]


def on(v: ShadowVenue, md: Quote | Trade) -> list:
    """A quote or trade to the venue, by the handler of its kind (as the adapter subscribes them)."""
    return list(v.on_quote(md) if type(md) is Quote else v.on_market(md))


def fills(events: object) -> list[OrderFilled]:
    return [e for e in events if type(e) is OrderFilled]  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- by hand


def test_a_market_order_takes_the_displayed_ask_then_only_what_a_later_quote_adds_there() -> None:
    v = venue(slippage_bps=D(10))
    on(v, quote(0, "100", "5", "101", "0.3"))
    out = v.submit(order("m", "buy", "1", at=0))
    [first] = fills(out)
    assert (first.qty, first.price, first.liquidity) == (D("0.3"), D("101.101"), "taker")  # 101 x (1 + 10 bps)
    assert first.fee == D("0.001") * D("0.3") * D("101.101")
    assert not fills(on(v, quote(1, "100", "4", "101", "0.3")))  # the same 0.3 shown again: ours already
    [more] = fills(on(v, quote(2, "100", "4", "101", "0.5")))  # 0.2 added at 101
    assert more.qty == D("0.2")
    [rest] = fills(on(v, quote(3, "100", "4", "102", "9")))  # a new price: all it shows
    assert (rest.qty, rest.price) == (D("0.5"), D("102.102"))
    assert v.working_orders() == []


def test_an_ioc_market_order_takes_what_is_shown_on_arrival_and_a_fok_all_or_nothing() -> None:
    v = venue()
    on(v, quote(0, "100", "5", "101", "0.3"))
    out = v.submit(order("ioc", "buy", "1", at=0, time_in_force="IOC"))
    assert [f.qty for f in fills(out)] == [D("0.3")] and type(out[-1]) is OrderCanceled
    out = v.submit(order("fok", "buy", "1", at=0, time_in_force="FOK"))
    assert not fills(out) and type(out[-1]) is OrderCanceled


def test_a_resting_bid_waits_for_the_queue_ahead_and_fills_with_what_trades_beyond_it() -> None:
    v = venue()
    on(v, quote(0, "100", "2", "101", "1"))
    v.submit(order("b", "buy", "1", "100", at=0))  # at the best bid: 2 ahead of it
    assert not fills(on(v, trade(1, "100", "1.5", "sell")))  # 0.5 ahead now
    assert not fills(on(v, trade(2, "100", "3", "buy")))  # a buyer at our price: not our queue
    [f] = fills(on(v, trade(3, "100", "0.7", "sell")))  # 0.5 ahead, 0.2 for us
    assert (f.qty, f.price, f.liquidity) == (D("0.2"), D("100"), "maker")
    assert f.fee == D("0.0002") * D("0.2") * D("100")
    [f] = fills(on(v, trade(4, "99", "5", "sell")))  # through our price: up to its size, the rest of ours
    assert f.qty == D("0.8") and v.working_orders() == []


def test_the_queue_is_capped_by_the_displayed_size_and_a_quote_crossing_the_price_fills_what_it_shows() -> None:
    v = venue()
    on(v, quote(0, "100", "2", "101", "1"))
    v.submit(order("b", "buy", "1", "100", at=0))
    on(v, quote(1, "100", "0.4", "101", "1"))  # what is ahead cannot exceed what is shown: 0.4
    [f] = fills(on(v, trade(2, "100", "0.5", "sell")))
    assert f.qty == D("0.1")
    # The ask came down to our price: that ask meets our bid, which fills at its limit as maker for
    # what the ask shows; nothing is ahead of the rest any more.
    [f] = fills(on(v, quote(3, "99", "3", "100", "0.25")))
    assert (f.qty, f.price, f.liquidity, f.ts_event) == (D("0.25"), D("100"), "maker", T0 + 3 * MS)
    assert f.fee == D("0.0002") * D("0.25") * D("100")
    [f] = fills(on(v, trade(4, "100", "0.3", "sell")))
    assert f.qty == D("0.3")
    assert not fills(on(v, quote(5, "99", "3", "100", "0.25")))  # the same 0.25 at 100: ours already
    [f] = fills(on(v, quote(6, "99", "3", "100", "0.3")))  # 0.05 more shown at 100
    assert f.qty == D("0.05")
    [f] = fills(on(v, quote(7, "98", "3", "99.5", "2")))  # through our price: at our limit, the rest of ours
    assert (f.qty, f.price) == (D("0.3"), D("100")) and v.working_orders() == []


def test_a_sell_limit_resting_above_the_ask_fills_when_the_bid_reaches_it_post_only_too() -> None:
    v = venue()
    on(v, quote(0, "100", "2", "101", "1"))
    out = v.submit(order("s", "sell", "0.5", "102", at=0, post_only=True))
    assert not fills(out) and [type(e).__name__ for e in out] == ["OrderAccepted"]
    assert not fills(on(v, quote(1, "101", "0.2", "101.5", "1")))  # the bid under our price: nothing
    [f] = fills(on(v, quote(2, "102", "0.2", "102.5", "1")))
    assert (f.qty, f.price, f.liquidity) == (D("0.2"), D("102"), "maker")


def test_inside_the_spread_nothing_is_ahead_and_behind_the_best_a_share_of_the_best_is() -> None:
    v = venue(queue_share=D("0.5"))
    on(v, quote(0, "100", "2", "102", "1"))
    v.submit(order("inside", "buy", "0.25", "101", at=0))
    v.submit(order("behind", "buy", "1", "99", at=0))  # 0.5 x 2 ahead
    out = on(v, trade(1, "101", "0.25", "sell"))
    assert [(f.client_order_id, f.qty) for f in fills(out)] == [("inside", D("0.25"))]
    assert not fills(on(v, trade(2, "99", "1", "sell")))
    assert [(f.client_order_id, f.qty) for f in fills(on(v, trade(3, "99", "0.5", "sell")))] == [("behind", D("0.5"))]


def test_a_limit_that_crosses_on_arrival_takes_up_to_its_price_and_rests_the_rest_first_in_line() -> None:
    v = venue()
    on(v, quote(0, "100", "2", "101", "0.4"))
    [f] = fills(v.submit(order("x", "buy", "1", "101", at=0)))
    assert (f.qty, f.price, f.liquidity) == (D("0.4"), D("101"), "taker")
    assert not fills(on(v, quote(1, "100", "2", "102", "5")))  # past its limit: it rests at 101
    [f] = fills(on(v, trade(2, "101", "0.1", "sell")))  # nobody ahead of it there
    assert (f.qty, f.liquidity) == (D("0.1"), "maker")


def test_post_only_that_would_take_is_cancelled_when_it_meets_the_book() -> None:
    v = venue()
    on(v, quote(0, "100", "2", "101", "0.4"))
    out = v.submit(order("p", "buy", "1", "101", at=0, post_only=True))
    assert not fills(out) and "post-only" in out[-1].reason


def test_a_gtd_order_is_cancelled_at_its_expiry_and_fills_nothing_after() -> None:
    v = venue()
    on(v, quote(0, "100", "0", "101", "1"))
    v.submit(order("g", "buy", "1", "100", at=0, time_in_force="GTD", expire_ns=T0 + 2 * MS))
    out = on(v, trade(2, "99", "5", "sell"))
    assert not fills(out) and "GTD" in out[0].reason
    bad = v.submit(order("g2", "buy", "1", "100", at=3, time_in_force="GTD"))
    assert type(bad[0]) is OrderRejected and "expire_ns" in bad[0].reason


def test_a_gtd_order_on_bars_is_cancelled_by_the_first_bar_past_its_expiry() -> None:
    v = ShadowVenue("binance", {"alice": VenueConfig()})
    on(v, trade(0, "100", "1", "buy"))
    v.submit(order("g", "buy", "1", "99", at=0, time_in_force="GTD", expire_ns=T0 + 2 * MS))
    assert not on(v, trade(1, "99.5", "1", "sell"))
    out = on(v, trade(3, "98", "1", "sell"))
    assert [type(e) for e in out] == [OrderCanceled]


# ----------------------------------------------------------------------------- the real captures


@cache
def capture(trades: str, quotes: str) -> tuple:
    return tuple(merge_by_time([read_market_file(data_file(trades)), read_market_file(data_file(quotes))]))


CAPTURES = [pytest.param(BTC_TRADES, BTC_BOOK_TICKER, id="spot"), pytest.param(USDM_BTC_TRADES, USDM_BTC_BOOK_TICKER,
                                                                              id="usdm")]


def run(events: tuple, orders: dict[int, list[SubmitOrder]], v: ShadowVenue) -> list:
    """The events through `v`, each order submitted right after the event of its index."""
    out: list = []
    for i, md in enumerate(events):
        out += on(v, md)
        for o in orders.get(i, ()):
            out += v.submit(o)
    return out


@pytest.mark.parametrize("trades_file, quotes_file", CAPTURES)
def test_resting_limits_on_the_capture_fill_only_with_volume_traded_or_shown_at_or_through_their_price(
        trades_file: str, quotes_file: str) -> None:
    events = capture(trades_file, quotes_file)
    step = D("0.00001") if trades_file == BTC_TRADES else D("0.001")
    v = venue(step_size=step, tick_size=D("0.01") if trades_file == BTC_TRADES else D("0.1"))
    orders: dict[int, list[SubmitOrder]] = {}
    placed: dict[str, SubmitOrder] = {}
    book = None
    for i in range(500, len(events), len(events) // 6):  # six moments across the capture
        book = next(md for md in reversed(events[:i + 1]) if type(md) is Quote)
        for k, (side, offset) in enumerate([("buy", 0), ("buy", 5), ("sell", 0), ("sell", 5)]):
            tick = v._terms["alice"].cfg.tick_size
            limit = book.bid - offset * tick if side == "buy" else book.ask + offset * tick
            o = SubmitOrder(id=f"o{i}.{k}", ts_event=events[i].ts_event, client="alice", venue="binance",
                            symbol="BTCUSDT", side=side, qty=D(1), order_type="limit", limit_price=limit,  # type: ignore[arg-type]
                            target_id="t", market_ns=events[i].ts_event)
            orders.setdefault(i, []).append(o)
            placed[o.id] = o
    out = run(events, orders, v)
    made = fills(out)
    assert len({f.client_order_id for f in made}) >= 12, "most of the 24 orders should fill at least in part"
    on_quotes = 0
    for coid, o in placed.items():
        mine = [f for f in made if f.client_order_id == coid]
        if not mine:
            continue
        buy = o.side == "buy"
        assert all(f.price == o.limit_price and f.liquidity == "maker" for f in mine)
        assert sum(f.qty for f in mine) <= o.qty
        # After the order came: the trades at or through its limit, and the quotes whose opposite best
        # reached it (an ask at or under a buy limit). The first of them is no later than its first
        # fill; each fill is at the time of one of them, for no more than that trade traded or that
        # quote showed; and up to each fill they traded and showed at least what it filled by then.
        after = [md for md in events if md.ts_event > o.ts_event]
        traded = [t for t in after if type(t) is Trade and (t.price <= o.limit_price if buy else t.price >= o.limit_price)]
        crossing = [(q.ts_event, q.ask_qty if buy else q.bid_qty) for q in after if type(q) is Quote
                    and (q.ask <= o.limit_price if buy else q.bid >= o.limit_price)]
        reached = [(t.ts_event, t.qty) for t in traded] + crossing
        assert reached and min(ts for ts, _ in reached) <= mine[0].ts_event
        filled = D(0)
        for f in mine:
            assert any(ts == f.ts_event and f.qty <= size for ts, size in reached), (coid, f)
            on_quotes += not any(t.ts_event == f.ts_event for t in traded)
            filled += f.qty
            assert filled <= sum(size for ts, size in reached if ts <= f.ts_event), (coid, f)
    assert on_quotes, "a quote crossing a resting limit on the capture should fill it at least once"


@pytest.mark.parametrize("trades_file, quotes_file", CAPTURES)
def test_a_large_market_order_takes_what_each_quote_shows_at_the_ask(trades_file: str, quotes_file: str) -> None:
    events = capture(trades_file, quotes_file)
    step = D("0.00001") if trades_file == BTC_TRADES else D("0.001")
    v = venue(step_size=step)
    i = len(events) // 3
    o = SubmitOrder(id="big", ts_event=events[i].ts_event, client="alice", venue="binance", symbol="BTCUSDT",
                    side="buy", qty=D(25), order_type="market", target_id="t", market_ns=events[i].ts_event)
    made = fills(run(events, {i: [o]}, v))
    assert sum(f.qty for f in made) == D(25)
    assert len(made) > 3, "25 BTC is more than the best ask shows: it fills over several quotes"
    quotes = [md for md in events if type(md) is Quote]
    times = [q.ts_event for q in quotes]
    arrival = next(md for md in reversed(events[:i + 1]) if type(md) is Quote)
    assert (made[0].price, made[0].qty) == (arrival.ask, min(arrival.ask_qty, D(25)))
    for f in made:  # each at the ask of a quote of its time, for no more than that quote shows
        same_time = quotes[bisect.bisect_left(times, f.ts_event):bisect.bisect_right(times, f.ts_event)] or [arrival]
        assert any(q.ask == f.price and f.qty <= q.ask_qty for q in same_time), f
    # It walks: the average paid is at or above the first ask it met, as walking a book's levels is.
    average = sum(f.qty * f.price for f in made) / D(25)
    assert average >= arrival.ask


class _Collect(Outbox):
    def __init__(self) -> None:
        self.events: list = []

    def publish(self, event: object) -> None:  # type: ignore[override]
        self.events.append(event)


@pytest.mark.parametrize("cancel_latency_ms, fills_expected", [(0, False), (50, True)])
def test_a_cancel_within_the_cancel_latency_of_a_crossing_trade_loses_the_race(cancel_latency_ms: int,
                                                                                 fills_expected: bool) -> None:
    events = capture(BTC_TRADES, BTC_BOOK_TICKER)
    i = 2000
    book = next(md for md in reversed(events[:i + 1]) if type(md) is Quote)
    limit = book.bid - D("0.50")
    # The first trade through the limit after the order came: a cancel is decided 10 ms before it.
    crossing = next(md for md in events[i + 1:] if type(md) is Trade and md.price < limit)
    cfg = ExecutionConfig(venues={"alice": {"binance": VenueConfig(fill_model="book", step_size=D("0.00001"),
                                                                   cancel_latency_ms=D(cancel_latency_ms))}})
    out = _Collect()
    adapter = ShadowAdapter(SimClock(), out, cfg)
    adapter.on_start()
    o = SubmitOrder(id="r", ts_event=events[i].ts_event, client="alice", venue="binance", symbol="BTCUSDT",
                    side="buy", qty=D("0.001"), order_type="limit", limit_price=limit, target_id="t",
                    market_ns=events[i].ts_event)
    stop = CancelOrder(id="r.cancel", ts_event=crossing.ts_event - 10 * MS, client_order_id="r", client="alice",
                       venue="binance", symbol="BTCUSDT", reason="manual", market_ns=crossing.ts_event - 10 * MS)
    for n, md in enumerate(events):
        if md.ts_event > crossing.ts_event + 200 * MS:
            break
        adapter.on_market_data(md)
        if n == i:
            adapter.on_submit_order(o)
        if md.ts_event <= stop.market_ns < events[n + 1].ts_event:  # execution decides the cancel then
            adapter.on_cancel_order(stop)
    filled = [e for e in out.events if type(e) is OrderFilled]
    canceled = [e for e in out.events if type(e) is OrderCanceled]
    assert bool(filled) is fills_expected
    assert bool(canceled) is not fills_expected
    if fills_expected:
        assert filled[0].ts_event == crossing.ts_event

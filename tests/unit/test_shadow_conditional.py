"""Stop-limit, take-profit-limit and trailing-stop orders on the shadow venue, worked out by hand."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from proto.events import OrderFilled, OrderRejected, SubmitOrder
from tests.unit.test_shadow_venue import MIN, T0, bar, trade, venue


def conditional(kind: str, side: str, stop: str | None = None, limit: str | None = None, trail: str | None = None,
                qty: str = "1", at: int = T0 + MIN) -> SubmitOrder:
    return SubmitOrder(id="c", ts_event=at, client="alice", venue="binance", symbol="BTCUSDT", side=side,  # type: ignore[arg-type]
                       qty=D(qty), order_type=kind, stop_price=D(stop) if stop else None,  # type: ignore[arg-type]
                       limit_price=D(limit) if limit else None, trailing_bps=D(trail) if trail else None,
                       target_id="t")


def fills(events: object) -> list[OrderFilled]:
    return [e for e in events if type(e) is OrderFilled]  # type: ignore[attr-defined]


def test_a_sell_stop_limit_becomes_a_limit_on_the_bar_that_reaches_its_stop_and_fills_from_the_next() -> None:
    v = venue(slippage_bps=D(0))
    v.on_bar(bar(0, "100", "101", "99", "100"))
    v.submit(conditional("stop_limit", "sell", stop="95", limit="94"))
    assert not fills(v.on_bar(bar(1, "100", "101", "96", "97")))  # not down to 95
    assert not fills(v.on_bar(bar(2, "97", "97", "93", "93")))  # reaches 95: armed now, through 94 too, but which first?
    [f] = fills(v.on_bar(bar(3, "93", "95", "92", "94")))  # a limit sell at 94: fills when the high is above it
    assert (f.price, f.qty, f.liquidity) == (D("94"), D("1"), "maker")


def test_a_buy_take_profit_limit_triggers_on_the_way_down() -> None:
    v = venue(slippage_bps=D(0))
    v.on_bar(bar(0, "100", "101", "99", "100"))
    v.submit(conditional("take_profit_limit", "buy", stop="95", limit="96"))
    assert not fills(v.on_bar(bar(1, "100", "104", "96", "103")))
    assert not fills(v.on_bar(bar(2, "100", "100", "94", "95")))  # reached 95: a buy limit at 96 from here
    [f] = fills(v.on_bar(bar(3, "97", "98", "95.5", "97")))
    assert f.price == D("96")


def test_a_sell_trailing_stop_follows_the_highest_price_and_fills_its_distance_below() -> None:
    v = venue(slippage_bps=D(0))
    v.on_market(trade(0, T0 + MIN - 1, "100"))
    v.submit(conditional("trailing_stop_market", "sell", trail="500"))  # 5%
    for n, price in enumerate(["100", "104", "110", "106"], 1):  # the highest: 110, so the stop is at 104.5
        assert not fills(v.on_market(trade(n, T0 + MIN + n, price)))
    [f] = fills(v.on_market(trade(9, T0 + MIN + 9, "104")))
    assert (f.price, f.liquidity) == (D("104"), "taker")  # the trade through 104.5, at its own lower price
    assert f.ts_event == T0 + MIN + 9


def test_a_buy_trailing_stop_on_bars_checks_the_low_before_the_bar_moves_it() -> None:
    v = venue(slippage_bps=D(0))
    v.on_bar(bar(0, "100", "101", "99", "100"))
    v.submit(conditional("trailing_stop_market", "buy", trail="1000"))  # 10% over the lowest
    assert not fills(v.on_bar(bar(1, "100", "105", "80", "85")))  # lowest 80 from here: stop at 88
    [f] = fills(v.on_bar(bar(2, "90", "91", "86", "90")))  # opened through 88: at the open
    assert f.price == D("90")


@pytest.mark.parametrize("order, problem", [
    (conditional("stop_limit", "sell", limit="94"), "needs a stop price"),
    (conditional("take_profit_limit", "sell", stop="94"), "needs a limit price"),
    (conditional("trailing_stop_market", "sell"), "trailing_bps in"),
    (conditional("trailing_stop_market", "sell", trail="10000"), "trailing_bps in"),
])
def test_conditional_orders_without_their_levels_are_rejected_by_name(order: SubmitOrder, problem: str) -> None:
    v = venue()
    v.on_bar(bar(0, "100", "101", "99", "100"))
    [rejected] = v.submit(order)
    assert type(rejected) is OrderRejected and problem in rejected.reason
